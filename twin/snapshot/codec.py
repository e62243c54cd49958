"""Snapshots: the whole state of a twin on disk, and back, without running code from the file.

A snapshot holds the city, the traffic state (links, vehicles, routes), every
component's records (interventions, incidents and units, agents, feeds), the
link changes in force, the recorder's rows so far, and every random generator's
state.  SimPy processes are not stored: they are thin drivers over those
records, and a restored twin builds them again (:meth:`Twin._start_processes`)
on a fresh clock set to the snapshot's time, with each process's next event at
the time its record says.  Simultaneous events keep their order because every
kind of process has a fixed priority (:data:`twin.clock.PRIORITY`).  So
restore-then-run equals the uninterrupted run, bit for bit.

File format (``city-twin-snapshot``, version :data:`VERSION`)
------------------------------------------------------------

Three parts, one after the other::

    {"format": "city-twin-snapshot", "version": 2, ... "body_bytes": N}   \\n <- header (JSON, padded to 1023 bytes)
    sha256:<64 hex digits>\\n                          <- sha256 of the body, a newline and the header line
    <body: N bytes, a zip archive in .npz layout>

The body holds ``manifest.json`` (the object graph, see below) and one ``aK.npy``
member per numpy array (uncompressed; read with ``allow_pickle=False``, so an
array can never hold Python objects).  :func:`read_snapshot` checks, before it
uses anything: the header's format and version, the package version, that the
body has the length the header says (a truncated file), and the sha256 checksum
(a bit flipped anywhere); then every array member's size against its header.
Each failure is an :class:`~basics.errors.InputError` naming the file.

The manifest is a generic object-graph encoding (why not a schema of records
per component: the state is spread over some forty classes that several
people maintain; encoding each class's own ``__getstate__`` keeps every
existing snapshot rule -- caches dropped, views rebuilt, old snapshots
upgraded by ``__setstate__`` -- and restore-then-run stays exact, while a new
field needs no change here).  JSON numbers, strings, lists and mappings carry
plain data; tagged objects carry tuples, dicts with other keys, sets, arrays,
numpy scalars, random generators (by their state), and instances.  An instance
is rebuilt only if its class is in the registry (:func:`registry`: the classes
defined in the project's own modules listed in :data:`SNAPSHOT_MODULES`, plus
:data:`EXTRA_CLASSES`), as ``cls.__new__(cls)`` and then its ``__setstate__``
(or its ``__dict__``) with the decoded state -- nothing named in the file is
imported or called.  Functions (dispatch policies) are stored by their
registered name and looked up in :func:`twin.emergency.dispatch.policy_registry`;
bound methods only as methods of a registered class.  Writing refuses anything
else (naming it), so every snapshot that is written can be read back.

The checksum detects damage, not forgery: it is not a signature.  A forged file
can hold odd state, but it cannot run code: the worst it can do is raise an
error or give a twin with wrong numbers.  Keep snapshots where only the twin's
operators can write.

Written to a temporary file and renamed, so an interrupted snapshot never
leaves a half-written file.  Files of version 1 (pickles) are refused: reading
them could run code.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import importlib
import inspect
import io
import json
import math
import os
import random
import types
import zipfile
from pathlib import Path, PosixPath, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from basics.atomic import atomic_open
from basics.errors import InputError

__all__ = [
    "write_snapshot",
    "read_snapshot",
    "snapshot_header",
    "snapshot_bytes",
    "twin_from_bytes",
    "encode_state",
    "decode_state",
    "registry",
    "FORMAT",
    "VERSION",
    "SnapshotError",
    "records_bytes",
    "records_from_bytes",
    "RECORDS_FORMAT",
]

FORMAT = "city-twin-snapshot"
VERSION = 2

#: the project's modules whose classes a snapshot may hold (each module's own classes only)
SNAPSHOT_MODULES: tuple[str, ...] = (
    "city_models.city",
    "city_models.demand",
    "city_models.network",
    "city_models.plans",
    "city_models.population",
    "city_models.shapes",
    "city_models.zone_tables",
    "kernels.agents",
    "kernels.assimilation",
    "kernels.choice",
    "kernels.routing",
    "kernels.traffic",
    "scenarios.base",
    "scenarios.city",
    "scenarios.demand",
    "scenarios.emergency",
    "scenarios.feeds",
    "scenarios.interventions",
    "scenarios.population",
    "scenarios.schema",
    "twin.components",
    "twin.equilibrium",
    "twin.interventions",
    "twin.linkcontrol",
    "twin.live.ensemble",
    "twin.live.estimate",
    "twin.live.filter",
    "twin.live.observation",
    "twin.live.settings",
    "twin.model",
    "twin.places",
    "twin.recorder",
    "twin.traffic",
    "twin.emergency.agenda",
    "twin.emergency.component",
    "twin.emergency.control",
    "twin.emergency.dispatch",
    "twin.emergency.incidents",
    "twin.emergency.log",
    "twin.emergency.resources",
    "twin.population.agents",
    "twin.population.component",
    "twin.population.outputs",
    "twin.population.policies",
    "twin.population.triplog",
)

#: classes that moved to another module since snapshots of this format were first written:
#: ``"old module:qualname"`` -> ``"new module:qualname"``.  A file names each class where it
#: was when the file was written; reading maps the old name to the new one (only to a
#: registered class), so files written before a move still load.
MOVED_CLASSES: dict[str, str] = {
    "twin.assimilation:AssimilationSettings": "twin.live.settings:AssimilationSettings",
    "twin.assimilation:PoolDemand": "twin.live.ensemble:PoolDemand",
    "twin.assimilation:Ensemble": "twin.live.ensemble:Ensemble",
    "twin.assimilation:_Held": "twin.live.ensemble:_Held",
    "twin.assimilation:_Log": "twin.live.estimate:EstimateLog",
    "twin.crossings:Crossings": "twin.live.observation:Crossings",
}

#: classes of other packages a twin holds (Mesa's agent sets); rebuilt like the project's
EXTRA_CLASSES: tuple[str, ...] = ("mesa.agent:AgentSet",)

#: methods of these classes may be stored bound to a registered instance (Mesa's step wrapper)
METHOD_OWNERS: tuple[str, ...] = ("mesa.model:Model",)

#: numpy bit generators a snapshot may hold, by name
BIT_GENERATORS = {name: getattr(np.random, name) for name in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")}

_HEADER_MAX = 4096
#: most members a snapshot's archive may have (arrays + manifest)
_MAX_MEMBERS = 10_000_000


class SnapshotError(InputError):
    """A snapshot that cannot be read (missing, not a snapshot, other version, damaged) or written."""


# ----------------------------------------------------------------------------- registry
_REGISTRY: dict[str, type] | None = None
_METHOD_OWNERS: tuple[type, ...] | None = None


def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _resolve(name: str) -> Any:
    module, _, qual = name.partition(":")
    obj = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def registry() -> dict[str, type]:
    """The classes a snapshot may hold, by ``"module:qualname"`` (built once, from
    :data:`SNAPSHOT_MODULES` and :data:`EXTRA_CLASSES`, never from a file).
    """
    global _REGISTRY, _METHOD_OWNERS
    if _REGISTRY is None:
        reg: dict[str, type] = {}

        def add(cls: type) -> None:
            reg[_class_name(cls)] = cls
            for inner in vars(cls).values():  # nested classes (e.g. records defined in a class)
                if (
                    isinstance(inner, type)
                    and inner.__module__ == cls.__module__
                    and inner.__qualname__.startswith(cls.__qualname__ + ".")
                ):
                    add(inner)

        for module_name in SNAPSHOT_MODULES:
            module = importlib.import_module(module_name)
            for obj in vars(module).values():
                if isinstance(obj, type) and obj.__module__ == module_name and not issubclass(obj, BaseException):
                    add(obj)
        for name in EXTRA_CLASSES:
            add(_resolve(name))
        _METHOD_OWNERS = tuple(_resolve(n) for n in METHOD_OWNERS)
        _REGISTRY = reg
    return _REGISTRY


_CLASS_CACHE: dict[str, type | None] = {}


def _lookup_class(name) -> type | None:
    """The registered class named ``"module:qualname"``, or ``None``.  Only a module listed in
    :data:`SNAPSHOT_MODULES` (or a class in :data:`EXTRA_CLASSES`) is ever imported for it.
    """
    if type(name) is not str:
        return None
    if name in _CLASS_CACHE:
        return _CLASS_CACHE[name]
    module_name, sep, qual = name.partition(":")
    cls = None
    if (
        sep
        and (module_name in SNAPSHOT_MODULES or name in EXTRA_CLASSES)
        and all(p.isidentifier() for p in qual.split("."))
    ):
        obj: Any = importlib.import_module(module_name)
        for part in qual.split("."):
            obj = vars(obj).get(part) if hasattr(obj, "__dict__") else None
        if (
            isinstance(obj, type)
            and obj.__module__ == module_name
            and obj.__qualname__ == qual
            and not issubclass(obj, BaseException)
        ):
            cls = obj
    if len(_CLASS_CACHE) < 10_000:
        _CLASS_CACHE[name] = cls
    return cls


def _registered_name(cls: type) -> str | None:
    """``"module:qualname"`` of ``cls`` if it is a registered class (its module is already imported)."""
    name = _class_name(cls)
    return name if _lookup_class(name) is cls else None


def _functions() -> dict[str, Any]:
    from twin.emergency.dispatch import policy_registry

    return policy_registry()


# ----------------------------------------------------------------------------- encoder
class _Encoder:
    """Object graph -> (JSON-able tree, list of arrays).  See the module docstring for the tags."""

    def __init__(self) -> None:
        self.memo: dict[int, int] = {}
        self.keep: list[Any] = []  # keeps temporary state objects alive, so ids are not reused
        self.arrays: list[np.ndarray] = []
        self.busy: set[int] = set()
        self._fn_names: dict[int, str] | None = None

    def _new_id(self, obj) -> int:
        i = len(self.keep)
        self.memo[id(obj)] = i
        self.keep.append(obj)
        return i

    def enc(self, obj, where: str):  # noqa: C901  (one dispatch on the type)
        t = type(obj)
        if obj is None or t is bool or t is str:
            return obj
        if t is int:
            return obj
        if t is float:
            return obj if math.isfinite(obj) else {"f": repr(obj)}
        ref = self.memo.get(id(obj))
        if ref is not None:
            return {"r": ref}
        if t is list:
            i = self._new_id(obj)
            return {"l": [self.enc(v, f"{where}[{k}]") for k, v in enumerate(obj)], "i": i}
        if t is dict:
            i = self._new_id(obj)
            if all(type(k) is str for k in obj):
                return {"m": {k: self.enc(v, f"{where}[{k!r}]") for k, v in obj.items()}, "i": i}
            return {
                "d": [[self.enc(k, f"{where} key"), self.enc(v, f"{where}[{k!r}]")] for k, v in obj.items()],
                "i": i,
            }
        if t is np.ndarray:
            i = self._new_id(obj)
            if obj.dtype.hasobject:
                if obj.dtype != object:
                    raise SnapshotError(f"cannot snapshot {where}: a structured array holding objects")
                return {
                    "ao": [self.enc(v, f"{where}[{k}]") for k, v in enumerate(obj.ravel(order="C").tolist())],
                    "shape": list(obj.shape),
                    "i": i,
                }
            self.arrays.append(obj)
            return {"a": len(self.arrays) - 1, "i": i}
        if isinstance(obj, np.generic):
            if obj.dtype.hasobject or obj.dtype.kind not in "biufcmM":
                raise SnapshotError(f"cannot snapshot {where}: numpy scalar of type {obj.dtype}")
            return {"n": obj.dtype.str, "v": obj.tobytes().hex()}
        if t is tuple or t is set or t is frozenset:
            if id(obj) in self.busy:
                raise SnapshotError(f"cannot snapshot {where}: a tuple that contains itself")
            self.busy.add(id(obj))
            tag = {tuple: "t", set: "s", frozenset: "fs"}[t]
            if t is set:  # mutable: memoized before its items, as pickle does
                i = self._new_id(obj)
                out = {tag: [self.enc(v, f"{where}[{k}]") for k, v in enumerate(obj)], "i": i}
            else:
                items = [self.enc(v, f"{where}[{k}]") for k, v in enumerate(obj)]
                out = {tag: items, "i": self._new_id(obj)}
            self.busy.discard(id(obj))
            return out
        if t is bytes:
            return {"b": base64.b64encode(obj).decode("ascii")}
        if t in (datetime.date, datetime.time, datetime.datetime):
            tz = obj.tzinfo if t is not datetime.date else None
            if tz is None or type(tz) is datetime.timezone:
                return {"dtm": t.__name__, "v": obj.isoformat()}
            key = getattr(tz, "key", None)
            if type(tz).__name__ != "ZoneInfo" or not isinstance(key, str):
                raise SnapshotError(f"cannot snapshot {where}: a time zone of type {type(tz).__name__}")
            return {"dtm": t.__name__, "v": obj.replace(tzinfo=None).isoformat(), "zone": key}
        if t is datetime.timedelta:
            return {"td": [obj.days, obj.seconds, obj.microseconds]}
        if t in (PurePosixPath, PosixPath, PureWindowsPath):
            return {"path": str(obj), "kind": t.__name__}
        if isinstance(obj, np.dtype):
            if obj.hasobject:
                raise SnapshotError(f"cannot snapshot {where}: a numpy dtype holding objects")
            return {"dt": obj.str if obj.names is None else obj.descr}
        if t is np.random.Generator:
            i = self._new_id(obj)
            return {"g": self._bitgen(obj.bit_generator, where), "i": i}
        if t is np.random.SeedSequence:
            i = self._new_id(obj)
            return {"ss": self._seedseq(obj, where), "i": i}
        if t in BIT_GENERATORS.values():
            i = self._new_id(obj)
            return {"bg": self._bitgen(obj, where), "i": i}
        if t is random.Random:
            i = self._new_id(obj)
            return {"rr": self.enc(obj.getstate(), f"{where}.state"), "i": i}
        if isinstance(obj, type):
            name = _registered_name(obj)
            if name is None:
                raise SnapshotError(
                    f"cannot snapshot {where}: class {_class_name(obj)} is not in the snapshot registry"
                )
            return {"c": name}
        if t is types.FunctionType:
            return {"fn": self._function_name(obj, where)}
        if t is types.MethodType:
            return {"me": self._method_name(obj, where), "self": self.enc(obj.__self__, f"{where}.__self__")}
        name = _registered_name(t)
        if name is None:
            raise SnapshotError(
                f"cannot snapshot {where}: an object of type {_class_name(t)}, which is not in the snapshot "
                "registry (add its module to twin.snapshot.SNAPSHOT_MODULES if it is the project's)"
            )
        if isinstance(obj, tuple):  # a NamedTuple
            if id(obj) in self.busy:
                raise SnapshotError(f"cannot snapshot {where}: a tuple that contains itself")
            self.busy.add(id(obj))
            fields = getattr(t, "_fields", None) or range(len(obj))
            items = [self.enc(v, f"{where}.{f}") for f, v in zip(fields, obj)]
            self.busy.discard(id(obj))
            return {"nt": name, "v": items, "i": self._new_id(obj)}
        if isinstance(obj, (list, dict, set)):
            raise SnapshotError(f"cannot snapshot {where}: {_class_name(t)} subclasses a container")
        i = self._new_id(obj)
        state = obj.__getstate__()
        self.keep.append(state)
        return {"o": name, "i": i, "s": self.enc(state, f"{where}({t.__qualname__})") if state is not None else None}

    def _bitgen(self, bg, where: str) -> dict:
        name = type(bg).__name__
        if BIT_GENERATORS.get(name) is not type(bg):
            raise SnapshotError(f"cannot snapshot {where}: bit generator {name}")
        seq = getattr(bg, "seed_seq", None)
        return {
            "name": name,
            "state": self.enc(bg.state, f"{where}.state"),
            "seed_seq": self.enc(seq, f"{where}.seed_seq") if type(seq) is np.random.SeedSequence else None,
        }

    def _seedseq(self, seq, where: str) -> dict:
        return {
            "entropy": self.enc(seq.entropy, f"{where}.entropy"),
            "spawn_key": [int(k) for k in seq.spawn_key],
            "pool_size": int(seq.pool_size),
            "n_children_spawned": int(seq.n_children_spawned),
        }

    def _function_name(self, fn, where: str) -> str:
        if self._fn_names is None:
            self._fn_names = {id(f): n for n, f in _functions().items()}
        name = self._fn_names.get(id(fn))
        if name is None:
            raise SnapshotError(
                f"cannot snapshot {where}: function {fn.__module__}.{fn.__qualname__} is not a "
                "registered dispatch policy"
            )
        return name

    def _method_name(self, m, where: str) -> str:
        name = m.__func__.__name__
        owner = _method_owner(type(m.__self__), name)
        if owner is None or owner.__dict__[name] is not m.__func__:
            raise SnapshotError(f"cannot snapshot {where}: bound method {m.__func__.__qualname__}")
        return name


def _method_owner(cls: type, name: str) -> type | None:
    """The registered class (or :data:`METHOD_OWNERS` class) defining plain function ``name`` for ``cls``."""
    global _METHOD_OWNERS
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("__"):
        return None
    if _METHOD_OWNERS is None:
        _METHOD_OWNERS = tuple(_resolve(n) for n in METHOD_OWNERS)
    for klass in cls.__mro__:
        if name in vars(klass):
            ok = _registered_name(klass) is not None or klass in _METHOD_OWNERS
            return klass if ok and inspect.isfunction(vars(klass)[name]) else None
    return None


def encode_state(obj) -> tuple[bytes, list[np.ndarray]]:
    """``obj``'s object graph as manifest JSON bytes and the arrays it refers to."""
    enc = _Encoder()
    tree = enc.enc(obj, "twin")
    manifest = json.dumps({"root": tree, "objects": len(enc.keep)}, separators=(",", ":"), allow_nan=False)
    return manifest.encode("utf-8"), enc.arrays


# ----------------------------------------------------------------------------- decoder
class _Decoder:
    def __init__(self, arrays, what: str, *, plain: bool = False) -> None:
        self.plain = plain
        self.arrays = arrays
        self.memo: dict[int, Any] = {}
        self.what = what
        self._fns: dict[str, Any] | None = None

    def bad(self, msg: str) -> SnapshotError:
        return SnapshotError(f"snapshot {self.what} is damaged: {msg}")

    def _put(self, node: dict, obj):
        i = node.get("i")
        if type(i) is not int or i in self.memo:
            raise self.bad(f"bad object id {i!r}")
        self.memo[i] = obj
        return obj

    def dec(self, node):  # noqa: C901  (one dispatch on the tag)
        t = type(node)
        if node is None or t is bool or t is str or t is int or t is float:
            return node
        if t is not dict or not node:
            raise self.bad(f"unexpected {t.__name__} in the manifest")
        tag = next(iter(node))
        if self.plain and tag in ("o", "nt", "c", "fn", "me"):
            raise SnapshotError(f"{self.what} holds an object ({tag!r}); it may hold plain data only")
        if tag == "r":
            try:
                return self.memo[node["r"]]
            except (KeyError, TypeError):
                raise self.bad(f"reference to unknown object {node['r']!r}") from None
        if tag == "f":
            if node["f"] not in ("nan", "inf", "-inf"):
                raise self.bad(f"float {node['f']!r}")
            return float(node["f"])
        if tag == "l":
            out: list = self._put(node, [])
            out.extend(self.dec(v) for v in self._list(node["l"]))
            return out
        if tag == "m":
            d: dict = self._put(node, {})
            items = node["m"]
            if type(items) is not dict:
                raise self.bad("a mapping that is not one")
            for k, v in items.items():
                d[k] = self.dec(v)
            return d
        if tag == "d":
            d = self._put(node, {})
            for pair in self._list(node["d"]):
                if type(pair) is not list or len(pair) != 2:
                    raise self.bad("a dict entry that is not a pair")
                d[self.dec(pair[0])] = self.dec(pair[1])
            return d
        if tag == "s":
            s: set = self._put(node, set())
            for v in self._list(node["s"]):
                s.add(self.dec(v))
            return s
        if tag in ("t", "fs"):
            items = [self.dec(v) for v in self._list(node[tag])]
            return self._put(node, tuple(items) if tag == "t" else frozenset(items))
        if tag == "a":
            k = node["a"]
            if type(k) is not int or not 0 <= k < len(self.arrays):
                raise self.bad(f"array {k!r} is not in the file")
            return self._put(node, self.arrays[k])
        if tag == "ao":
            shape = self._shape(node.get("shape"))
            values = [self.dec(v) for v in self._list(node["ao"])]
            if len(values) != math.prod(shape):
                raise self.bad("an object array whose values do not fill its shape")
            arr = np.empty(len(values), dtype=object)
            for k, v in enumerate(values):
                arr[k] = v
            return self._put(node, arr.reshape(shape))
        if tag == "n":
            dt = self._dtype(node["n"])
            if dt.kind not in "biufcmM":
                raise self.bad(f"numpy scalar of type {dt}")
            raw = bytes.fromhex(node["v"]) if type(node.get("v")) is str else b""
            if len(raw) != dt.itemsize:
                raise self.bad(f"numpy scalar of {len(raw)} bytes for type {dt}")
            return np.frombuffer(raw, dtype=dt)[0]
        if tag == "dt":
            return self._dtype(node["dt"])
        if tag == "dtm":
            kinds = {"date": datetime.date, "time": datetime.time, "datetime": datetime.datetime}
            kind, value = kinds.get(node["dtm"]), node.get("v")
            if kind is None or type(value) is not str or len(value) > 64:
                raise self.bad(f"date/time {node['dtm']!r}")
            out = kind.fromisoformat(value)
            if type(node.get("zone")) is str:
                from zoneinfo import ZoneInfo

                out = out.replace(tzinfo=ZoneInfo(node["zone"]))
            return out
        if tag == "td":
            days, secs, micro = (self._list(node["td"]) + [None] * 3)[:3]
            if not all(type(x) is int for x in (days, secs, micro)):
                raise self.bad("timedelta")
            return datetime.timedelta(days=days, seconds=secs, microseconds=micro)
        if tag == "path":
            kinds = {"PurePosixPath": PurePosixPath, "PosixPath": PosixPath, "PureWindowsPath": PureWindowsPath}
            if node.get("kind") not in kinds or type(node["path"]) is not str:
                raise self.bad("path")
            return kinds[node["kind"]](node["path"])
        if tag == "b":
            return base64.b64decode(node["b"], validate=True)
        if tag == "g":
            return self._put(node, np.random.Generator(self._bitgen(node["g"])))
        if tag == "bg":
            return self._put(node, self._bitgen(node["bg"]))
        if tag == "ss":
            return self._put(node, self._seedseq(node["ss"]))
        if tag == "rr":
            r = self._put(node, random.Random())
            r.setstate(self._tuples(self.dec(node["rr"])))
            return r
        if tag == "c":
            return self._class(node["c"])
        if tag == "fn":
            if self._fns is None:
                self._fns = _functions()
            fn = self._fns.get(node["fn"]) if type(node["fn"]) is str else None
            if fn is None:
                raise SnapshotError(
                    f"snapshot {self.what} uses dispatch policy {node['fn']!r}, which is neither built in nor a "
                    "registered plug-in (entry point group 'city_twin.dispatch_policies'); to trust it, name it "
                    f"with --allow-plugins {node['fn']}"
                )
            return fn
        if tag == "me":
            obj = self.dec(node["self"])
            owner = _method_owner(type(obj), node["me"])
            if owner is None:
                raise self.bad(f"method {node['me']!r} of {type(obj).__qualname__}")
            return types.MethodType(vars(owner)[node["me"]], obj)
        if tag == "nt":
            cls = self._class(node["nt"])
            if not issubclass(cls, tuple):
                raise self.bad(f"{node['nt']} is not a tuple type")
            items = [self.dec(v) for v in self._list(node["v"])]
            if len(items) != len(getattr(cls, "_fields", items)):
                raise self.bad(f"{node['nt']} with {len(items)} fields")
            return self._put(node, tuple.__new__(cls, items))
        if tag == "o":
            cls = self._class(node["o"])
            if issubclass(cls, (tuple, list, dict, set, type)):
                raise self.bad(f"{node['o']} is not an object type")
            obj = self._put(node, cls.__new__(cls))
            state = self.dec(node.get("s"))
            setstate = getattr(cls, "__setstate__", None)
            if state is None:  # as pickle: no state, no __setstate__ call
                pass
            elif setstate is not None:
                obj.__setstate__(state)
            else:
                _default_setstate(obj, state, self)
            return obj
        raise self.bad(f"unknown tag {tag!r}")

    # helpers
    def _list(self, v) -> list:
        if type(v) is not list:
            raise self.bad("a list that is not one")
        return v

    def _shape(self, shape) -> tuple[int, ...]:
        if type(shape) is not list or len(shape) > 32 or any(type(s) is not int or s < 0 for s in shape):
            raise self.bad(f"array shape {shape!r}")
        return tuple(shape)

    def _tuples(self, v):
        return tuple(self._tuples(x) for x in v) if isinstance(v, (list, tuple)) else v

    def _dtype(self, spec) -> np.dtype:
        if type(spec) is list:
            spec = [tuple(self._tuples(f)) for f in spec]
        elif type(spec) is not str:
            raise self.bad(f"dtype {spec!r}")
        try:
            dt = np.dtype(spec)
        except (TypeError, ValueError) as exc:
            raise self.bad(f"dtype {spec!r}: {exc}") from None
        if dt.hasobject:
            raise self.bad(f"dtype {spec!r} holds objects")
        return dt

    def _class(self, name) -> type:
        cls = _lookup_class(MOVED_CLASSES.get(name, name) if type(name) is str else name)
        if cls is None:
            raise SnapshotError(
                f"snapshot {self.what} names class {name!r}, which snapshots may not hold "
                "(only the twin's own record classes are rebuilt)"
            )
        return cls

    def _seedseq(self, node) -> np.random.SeedSequence:
        if type(node) is not dict:
            raise self.bad("seed sequence")
        entropy = self.dec(node.get("entropy"))
        pool = node.get("pool_size")
        spawned = node.get("n_children_spawned")
        key = node.get("spawn_key")
        if (
            type(pool) is not int
            or not 1 <= pool <= 1024
            or type(spawned) is not int
            or spawned < 0
            or type(key) is not list
            or len(key) > 1024
            or any(type(k) is not int or k < 0 for k in key)
        ):
            raise self.bad("seed sequence parameters")
        if isinstance(entropy, np.ndarray) and entropy.size > 1024:
            raise self.bad("seed sequence entropy")
        return np.random.SeedSequence(entropy, spawn_key=tuple(key), pool_size=pool, n_children_spawned=spawned)

    def _bitgen(self, node):
        if type(node) is not dict:
            raise self.bad("bit generator")
        cls = BIT_GENERATORS.get(node.get("name")) if type(node.get("name")) is str else None
        if cls is None:
            raise self.bad(f"bit generator {node.get('name')!r}")
        seq = self.dec(node.get("seed_seq"))
        bg = cls(seq) if type(seq) is np.random.SeedSequence else cls()
        bg.state = self.dec(node.get("state"))
        return bg


def _default_setstate(obj, state, dec: _Decoder) -> None:
    """What pickle does for an object without ``__setstate__``: a dict and/or slot values."""
    slots = None
    if type(state) is tuple and len(state) == 2:
        state, slots = state
    if state is not None:
        if type(state) is not dict:
            raise dec.bad(f"state of {type(obj).__qualname__} is not a mapping")
        obj.__dict__.update(state)
    if slots is not None:
        if type(slots) is not dict:
            raise dec.bad(f"slot state of {type(obj).__qualname__} is not a mapping")
        for k, v in slots.items():
            setattr(obj, k, v)


def decode_state(manifest: bytes, arrays: list[np.ndarray], *, what: str = "(in memory)"):
    """The object graph :func:`encode_state` wrote (see the module docstring for what may be rebuilt)."""
    try:
        doc = json.loads(manifest)
    except (ValueError, RecursionError) as exc:
        raise SnapshotError(f"snapshot {what} is damaged: its manifest is not JSON ({str(exc)[:100]})") from None
    if type(doc) is not dict or "root" not in doc:
        raise SnapshotError(f"snapshot {what} is damaged: its manifest has no root")
    dec = _Decoder(arrays, what)
    try:
        return dec.dec(doc["root"])
    except SnapshotError:
        raise
    except RecursionError:
        raise SnapshotError(f"snapshot {what} is damaged: its objects nest too deeply") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        raise SnapshotError(
            f"snapshot {what} is damaged or does not fit this version: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None


# ----------------------------------------------------------------------------- container
def _npy_header(arr: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The ``.npy`` header of ``arr`` and a C-contiguous array of its bytes (``arr.T`` for Fortran order)."""
    fortran = bool(arr.flags.f_contiguous and not arr.flags.c_contiguous)
    data = arr.T if fortran else np.ascontiguousarray(arr)
    d = {"descr": np.lib.format.dtype_to_descr(arr.dtype), "fortran_order": fortran, "shape": arr.shape}
    head = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(head, d)
    except ValueError:  # a header over 64 KiB (many fields)
        head = io.BytesIO()
        np.lib.format.write_array_header_2_0(head, d)
    return head.getvalue(), data


class _HashingWriter:
    """A write-only, unseekable stream that hashes what it passes on (zip then writes data
    descriptors and never seeks back, so the hash is of the bytes as they land).
    """

    def __init__(self, fh, pool=None) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()
        self.n = 0
        self.pool = pool  # hash in this (one-thread) pool, in order, while the writing goes on
        self.waits: list = []

    def write(self, data) -> int:
        # the data stays valid: bytes, or a view of an array the caller holds until the end
        n = len(data) if isinstance(data, bytes) else memoryview(data).nbytes
        if self.pool is not None and n > 1 << 16:
            self.waits.append(self.pool.submit(self.digest.update, data))
        else:
            for w in self.waits:
                w.result()
            self.waits.clear()
            self.digest.update(data)
        self.n += n
        self.fh.write(data)
        return n

    def hexdigest(self) -> hashlib._Hash:
        for w in self.waits:
            w.result()
        self.waits.clear()
        return self.digest

    def flush(self) -> None:
        self.fh.flush()


def _pack_to(fh, manifest: bytes, arrays: list[np.ndarray]) -> None:
    """Write the body to ``fh``: a zip archive (stored, .npz layout) of the manifest and the arrays."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr("manifest.json", manifest)
        for k, arr in enumerate(arrays):
            head, data = _npy_header(arr)
            with zf.open(f"a{k}.npy", "w", force_zip64=data.nbytes > 2**30) as member:
                member.write(head)
                if data.nbytes:
                    member.write(memoryview(data.reshape(-1).view(np.uint8)))


class _MemFile(io.RawIOBase):
    """A read-only, seekable file over a buffer, without copying it (for the zip directory)."""

    def __init__(self, buf) -> None:
        self.mv = memoryview(buf).cast("B")
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: len(self.mv)}[whence]
        self.pos = max(0, base + pos)
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = len(self.mv) if n is None or n < 0 else min(len(self.mv), self.pos + n)
        out = self.mv[self.pos : end].tobytes() if end > self.pos else b""
        self.pos = max(self.pos, end)
        return out

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def _unpack(body: bytes, what: str) -> tuple[bytes, list[np.ndarray]]:
    def bad(msg: str) -> SnapshotError:
        return SnapshotError(f"snapshot {what} is damaged: {msg}")

    try:
        zf = zipfile.ZipFile(_MemFile(body))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise bad(f"its archive cannot be read ({exc})") from None
    if len(infos) > _MAX_MEMBERS:
        raise bad(f"{len(infos)} members")
    by_name = {}
    for info in infos:
        if (
            info.compress_type != zipfile.ZIP_STORED
            or info.file_size > len(body)
            or info.flag_bits & 0x1
            or not 0 <= info.header_offset < len(body)
        ):
            raise bad(f"member {info.filename!r} is compressed, encrypted or larger than the file")
        by_name[info.filename] = info
    if "manifest.json" not in by_name:
        raise bad("no manifest.json")
    n = len(by_name) - 1
    if any(f"a{k}.npy" not in by_name for k in range(n)):
        raise bad("its arrays are not numbered a0.npy .. aN.npy")
    mv = memoryview(body)
    try:
        manifest = zf.read("manifest.json")
        arrays = []
        for k in range(n):
            info = by_name[f"a{k}.npy"]
            # the member's bytes straight from the body (stored, not compressed; the checksum
            # already covered them): its local header is 30 bytes, the name and an extra field
            local = body[info.header_offset : info.header_offset + 30]
            if len(local) < 30 or local[:4] != b"PK\x03\x04":
                raise bad(f"array a{k} has no local header")
            start = (
                info.header_offset
                + 30
                + int.from_bytes(local[26:28], "little")
                + int.from_bytes(local[28:30], "little")
            )
            member = mv[start : start + info.file_size]
            if len(member) != info.file_size:
                raise bad(f"array a{k} runs past the end of the file")
            fh = io.BytesIO(member[: min(len(member), 1 << 20)])
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise bad(f"array a{k} has npy version {version}")
            count = math.prod(shape)
            offset = fh.tell()
            if dtype.hasobject or offset + count * dtype.itemsize != info.file_size:
                raise bad(f"array a{k} ({dtype}, shape {shape}) does not fit its {info.file_size} bytes")
            flat = np.frombuffer(member, dtype=dtype, count=count, offset=offset) if count else np.empty(0, dtype)
            if fortran:
                arr = flat.reshape(shape[::-1]).T.copy(order="F")
            else:
                arr = flat.reshape(shape).copy()
            arrays.append(arr)
    except SnapshotError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, TypeError, KeyError, SyntaxError) as exc:
        raise bad(f"{type(exc).__name__}: {str(exc)[:200]}") from None
    return manifest, arrays


def _header_for(twin) -> dict:
    from twin.results import package_version

    return {
        "format": FORMAT,
        "version": VERSION,
        "package_version": package_version(),
        "scenario": twin.scenario.name,
        "scenario_hash": twin.scenario_hash,
        "seed": int(twin.seed),
        "sim_time_s": float(twin.now),
        "clock_s": float(twin.clock_s()),
    }


#: bytes reserved at the start of a snapshot file for its header line and checksum line
_RESERVED = 1024 + len("sha256:") + 64 + 1


def _lines(header: dict, digest: hashlib._Hash) -> bytes:
    """The header line (padded with spaces to a fixed width) and the checksum line."""
    line = json.dumps(header, separators=(",", ":")).encode("utf-8")
    if len(line) > 1023:
        raise SnapshotError(f"snapshot header too long ({len(line)} bytes): a scenario name that long?")
    line = line.ljust(1023)
    digest.update(b"\n" + line)
    return line + b"\n" + f"sha256:{digest.hexdigest()}".encode("ascii") + b"\n"


def _write_to(fh, twin) -> None:
    """Write the snapshot file to ``fh`` (seekable): room for the lines, the body, then the lines.

    The checksum is sha256 of the body, a newline and the header line, in that order (so it
    is computed as the body is written).
    """
    twin.sync()
    header = _header_for(twin)
    manifest, arrays = encode_state(twin)
    from concurrent.futures import ThreadPoolExecutor

    start = fh.tell()
    fh.write(b" " * _RESERVED)
    with ThreadPoolExecutor(1) as pool:
        writer = _HashingWriter(fh, pool)
        _pack_to(writer, manifest, arrays)
        digest = writer.hexdigest()
    header["body_bytes"] = writer.n
    end = fh.tell()
    fh.seek(start)
    fh.write(_lines(header, digest))
    fh.seek(end)


def snapshot_bytes(twin) -> bytes:
    """The whole state of ``twin`` as the bytes of a snapshot file (see the module docstring)."""
    buf = io.BytesIO()
    _write_to(buf, twin)
    return buf.getvalue()


def write_snapshot(twin, path: str | os.PathLike) -> Path:
    """Write ``twin``'s state to ``path`` atomically (a temporary file renamed); returns the path."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise SnapshotError(f"snapshot path {str(path)!r} is a folder; give a file name (e.g. now.snap)")
    try:
        with atomic_open(path, "wb", fsync=True, buffering=1 << 20) as fh:
            _write_to(fh, twin)
    except OSError as exc:
        raise SnapshotError(f"cannot write snapshot {str(path)!r}: {exc.strerror or exc}") from None
    return path


def _parse_header(line: bytes, what: str) -> dict:
    try:
        header = json.loads(line)
    except (ValueError, RecursionError):
        header = None
    fmt = header.get("format") if isinstance(header, dict) else None
    if fmt == "city-twin-snapshot/1":
        raise SnapshotError(
            f"snapshot {what} is in the old format 1 (a Python pickle), which this version no "
            "longer reads because loading it could run code: make the snapshot again"
        )
    if fmt != FORMAT:
        raise SnapshotError(f"{what} is not a city-twin snapshot (no '{FORMAT}' header)")
    if header.get("version") != VERSION:
        raise SnapshotError(
            f"snapshot {what} has format version {header.get('version')!r}; this version of "
            f"city-twin reads version {VERSION}"
        )
    for key, kind in (
        ("package_version", str),
        ("scenario", str),
        ("sim_time_s", float),
        ("clock_s", float),
        ("body_bytes", int),
    ):
        if not isinstance(header.get(key), kind) or isinstance(header.get(key), bool):
            raise SnapshotError(f"snapshot {what} is damaged: header field {key!r} is missing or wrong")
    return header


def snapshot_header(path: str | os.PathLike) -> dict:
    """The header of a snapshot file (cheap: reads its first line; :func:`read_snapshot` checks the rest)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            line = fh.readline(_HEADER_MAX)
    except FileNotFoundError:
        raise SnapshotError(f"snapshot {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise SnapshotError(f"snapshot {str(path)!r} is a folder, not a file") from None
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {str(path)!r}: {exc.strerror or exc}") from None
    return _parse_header(line, repr(str(path)))


def _check_lines(data: bytes, what: str, total: int) -> tuple[bytes, bytes, int]:
    """Check the header line (format, version, package version) and the checksum line at the
    start of ``data``, and that the file's ``total`` length fits the header; returns
    (header line, checksum line, where the body starts).
    """
    from twin.results import package_version

    nl = data.find(b"\n", 0, _HEADER_MAX)
    line = data[:nl] if nl >= 0 else data[:_HEADER_MAX]
    header = _parse_header(line, what)
    if header["package_version"] != package_version():
        raise SnapshotError(
            f"snapshot {what} was written by city-twin {header['package_version']}, "
            f"this is {package_version()}: restore it with that version"
        )
    nl2 = data.find(b"\n", nl + 1, nl + 1 + 100)
    check = data[nl + 1 : nl2] if nl2 >= 0 else b""
    if not check.startswith(b"sha256:") or len(check) != 7 + 64:
        raise SnapshotError(f"snapshot {what} is damaged or incomplete: no checksum line")
    if total - (nl2 + 1) != header["body_bytes"]:
        raise SnapshotError(
            f"snapshot {what} is incomplete or damaged: {total - (nl2 + 1):,} bytes of state "
            f"where its header says {header['body_bytes']:,} (a truncated file?)"
        )
    return line, check, nl2 + 1


def verify_bytes(data: bytes, what: str) -> tuple[dict, bytes]:
    """Check a snapshot's header, version, length and checksum; returns (header, body)."""
    from twin.results import package_version

    nl = data.find(b"\n", 0, _HEADER_MAX)
    line = data[:nl] if nl >= 0 else data[:_HEADER_MAX]
    header = _parse_header(line, what)
    if header["package_version"] != package_version():
        raise SnapshotError(
            f"snapshot {what} was written by city-twin {header['package_version']}, "
            f"this is {package_version()}: restore it with that version"
        )
    nl2 = data.find(b"\n", nl + 1, nl + 1 + 100)
    check = data[nl + 1 : nl2] if nl2 >= 0 else b""
    if not check.startswith(b"sha256:") or len(check) != 7 + 64:
        raise SnapshotError(f"snapshot {what} is damaged or incomplete: no checksum line")
    body = memoryview(data)[nl2 + 1 :]  # a view: the state is not copied to be checked
    if len(body) != header["body_bytes"]:
        raise SnapshotError(
            f"snapshot {what} is incomplete or damaged: {len(body):,} bytes of state where its "
            f"header says {header['body_bytes']:,} (a truncated file?)"
        )
    digest = hashlib.sha256()
    digest.update(body)
    digest.update(b"\n" + line)
    if digest.hexdigest().encode("ascii") != check[7:]:
        raise SnapshotError(f"snapshot {what} is damaged: its checksum does not match its contents")
    return header, body


def twin_from_bytes(data: bytes, *, what: str = "(in memory)"):
    """A twin from the bytes of a snapshot file (checked before anything is used)."""
    data = data if type(data) is bytes else bytes(data)
    verify_bytes(data, what)
    manifest, arrays = _unpack(data, what)  # the archive behind the header lines (zip allows a prefix)
    return decode_state(manifest, arrays, what=what)


def _read_checked(path: Path, what: str) -> memoryview:
    """The bytes of a snapshot file, checked as :func:`verify_bytes` does; the body is hashed in
    a second thread while the rest is read (both release the GIL), so checking costs little more
    than reading.
    """
    from concurrent.futures import ThreadPoolExecutor

    chunk = 1 << 24
    with open(path, "rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        buf = np.empty(size, np.uint8)  # not zero-filled: every byte is read into it
        mv = memoryview(buf)
        got = fh.readinto(mv[: min(size, _HEADER_MAX + 200)]) or 0
        start = _check_lines(bytes(buf[:got]), what, size)[2]
        digest = hashlib.sha256()
        with ThreadPoolExecutor(1) as pool:
            waits = [pool.submit(digest.update, mv[start:got])] if got > start else []
            pos = got
            while pos < size:
                n = fh.readinto(mv[pos : min(size, pos + chunk)])
                if not n:
                    raise SnapshotError(f"snapshot {what} is incomplete: the file shrank while it was read")
                waits.append(pool.submit(digest.update, mv[max(pos, start) : pos + n]))
                pos += n
            for w in waits:
                w.result()
    line, check, _ = _check_lines(bytes(buf[:got]), what, size)
    digest.update(b"\n" + line)
    if digest.hexdigest().encode("ascii") != check[7:]:
        raise SnapshotError(f"snapshot {what} is damaged: its checksum does not match its contents")
    return mv


def read_snapshot(path: str | os.PathLike):
    """Load a twin from a snapshot; it resumes where the snapshot was taken."""
    path = Path(path)
    what = repr(str(path))
    snapshot_header(path)  # a clear error for a missing file or another format, before reading it all
    try:
        buf = _read_checked(path, what)
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {what}: {exc.strerror or exc}") from None
    manifest, arrays = _unpack(buf, what)  # the archive behind the header lines (zip allows a prefix)
    return decode_state(manifest, arrays, what=what)


# ----------------------------------------------------------------------------- plain records
#: the same container for plain data (checkpoints of comparisons and forks): no classes at all
RECORDS_FORMAT = "city-twin-records"
RECORDS_VERSION = 1


def records_bytes(obj, *, kind: str) -> bytes:
    """Plain data (dicts, lists, tuples, numbers, strings, numpy arrays and scalars) as the
    bytes of a checksummed records file (the snapshot container, format :data:`RECORDS_FORMAT`).
    """
    manifest, arrays = encode_state(obj)
    buf = io.BytesIO()
    _pack_to(buf, manifest, arrays)
    body = buf.getvalue()
    line = json.dumps(
        {"format": RECORDS_FORMAT, "version": RECORDS_VERSION, "kind": kind, "body_bytes": len(body)},
        separators=(",", ":"),
    ).encode("utf-8")
    digest = hashlib.sha256(line + b"\n" + body).hexdigest()
    return line + b"\n" + f"sha256:{digest}".encode("ascii") + b"\n" + body


def records_from_bytes(data: bytes, *, kind: str, what: str):
    """What :func:`records_bytes` wrote, checked (format, kind, length, checksum) before it is decoded;
    a :class:`SnapshotError` naming ``what`` otherwise.  Only plain data comes back: any class is refused.
    """
    nl = data.find(b"\n", 0, _HEADER_MAX)
    try:
        header = json.loads(data[:nl]) if nl > 0 else None
    except ValueError:
        header = None
    if (
        not isinstance(header, dict)
        or header.get("format") != RECORDS_FORMAT
        or header.get("version") != RECORDS_VERSION
        or header.get("kind") != kind
        or type(header.get("body_bytes")) is not int
    ):
        raise SnapshotError(f"{what} is not a {kind} file of this version")
    nl2 = data.find(b"\n", nl + 1, nl + 100)
    check = data[nl + 1 : nl2] if nl2 > 0 else b""
    body = data[nl2 + 1 :] if nl2 > 0 else b""
    if (
        len(body) != header["body_bytes"]
        or not check.startswith(b"sha256:")
        or hashlib.sha256(data[:nl] + b"\n" + body).hexdigest().encode("ascii") != check[7:]
    ):
        raise SnapshotError(f"{what} is incomplete or damaged (its length or checksum does not match)")
    manifest, arrays = _unpack(body, what)
    try:
        doc = json.loads(manifest)
        return _Decoder(arrays, what, plain=True).dec(doc["root"])
    except SnapshotError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as exc:
        raise SnapshotError(f"{what} is damaged: {type(exc).__name__}: {str(exc)[:200]}") from None
