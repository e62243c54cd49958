"""The snapshot's object-graph encoding: a twin's state to a JSON manifest plus arrays, and back.

:func:`encode_state` walks the state (each instance's own ``__getstate__``) into a JSON-able
tree and a list of numpy arrays; :func:`decode_state` rebuilds it, creating instances only of
registered classes (:mod:`twin.snapshot.classes`) and running nothing named in the data.  See
:mod:`twin.snapshot` for the tags and the rules.
"""

from __future__ import annotations

import base64
import datetime
import json
import math
import random
import types
from pathlib import PosixPath, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from twin.snapshot.classes import (
    BIT_GENERATORS,
    MOVED_CLASSES,
    _class_name,
    _functions,
    _lookup_class,
    _method_owner,
    _registered_name,
)
from twin.snapshot.errors import SnapshotError

__all__ = ["encode_state", "decode_state"]


#: what :meth:`_Encoder._enc_value` returns for an object that is not a plain value
_NOT_A_VALUE = object()


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
        if t in (list, dict, tuple, set, frozenset, np.ndarray) or isinstance(obj, np.generic):
            return self._enc_container(obj, t, where)
        out = self._enc_value(obj, t, where)
        return out if out is not _NOT_A_VALUE else self._enc_object(obj, t, where)

    def _enc_container(self, obj, t: type, where: str):
        """Lists, dicts, arrays, numpy scalars, tuples and sets (memoized where mutable)."""
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
        raise AssertionError(t)  # enc sends only these types here

    def _enc_value(self, obj, t: type, where: str):
        """Plain values with a tag of their own (bytes, dates, paths, dtypes, random generators);
        :data:`_NOT_A_VALUE` for anything else.
        """
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
        return _NOT_A_VALUE

    def _enc_object(self, obj, t: type, where: str):
        """Classes, functions, bound methods and instances of registered classes."""
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
                "registry (add its module to twin.snapshot.classes.SNAPSHOT_MODULES if it is the project's)"
            )
        if isinstance(obj, tuple):  # a NamedTuple
            if id(obj) in self.busy:
                raise SnapshotError(f"cannot snapshot {where}: a tuple that contains itself")
            self.busy.add(id(obj))
            fields = getattr(t, "_fields", None) or range(len(obj))
            items = [self.enc(v, f"{where}.{f}") for f, v in zip(fields, obj, strict=False)]
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


def encode_state(obj) -> tuple[bytes, list[np.ndarray]]:
    """``obj``'s object graph as manifest JSON bytes and the arrays it refers to."""
    enc = _Encoder()
    tree = enc.enc(obj, "twin")
    manifest = json.dumps({"root": tree, "objects": len(enc.keep)}, separators=(",", ":"), allow_nan=False)
    return manifest.encode("utf-8"), enc.arrays


# ----------------------------------------------------------------------------- decoder
#: the decoder's tags, by the method that rebuilds them
_CONTAINER_TAGS = frozenset(("l", "m", "d", "s", "t", "fs", "a", "ao"))
_VALUE_TAGS = frozenset(("n", "dt", "dtm", "td", "path", "b", "g", "bg", "ss", "rr"))
_OBJECT_TAGS = frozenset(("c", "fn", "me", "nt", "o"))


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

    def dec(self, node):
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
        if tag in _CONTAINER_TAGS:
            return self._dec_container(tag, node)
        if tag in _VALUE_TAGS:
            return self._dec_value(tag, node)
        if tag in _OBJECT_TAGS:
            return self._dec_object(tag, node)
        raise self.bad(f"unknown tag {tag!r}")

    def _dec_container(self, tag: str, node: dict):
        """Lists, mappings, dicts, sets, tuples, frozensets and arrays."""
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
            return self._object_array(node)
        raise self.bad(f"unknown tag {tag!r}")

    def _dec_value(self, tag: str, node: dict):
        """Numpy scalars and dtypes, dates and times, paths, bytes and random generators."""
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
        if tag in ("dtm", "td"):
            return self._date_time(tag, node)
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
        raise self.bad(f"unknown tag {tag!r}")

    def _dec_object(self, tag: str, node: dict):
        """Registered classes, dispatch policies, bound methods, named tuples and instances."""
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

    def _object_array(self, node: dict) -> np.ndarray:
        """An array of Python objects (tag ``"ao"``), filled item by item."""
        shape = self._shape(node.get("shape"))
        values = [self.dec(v) for v in self._list(node["ao"])]
        if len(values) != math.prod(shape):
            raise self.bad("an object array whose values do not fill its shape")
        arr = np.empty(len(values), dtype=object)
        for k, v in enumerate(values):
            arr[k] = v
        return self._put(node, arr.reshape(shape))

    def _date_time(self, tag: str, node: dict):
        """A date, time or datetime (tag ``"dtm"``, with its zone) or a timedelta (``"td"``)."""
        if tag == "dtm":
            kinds: dict[str, type[datetime.date] | type[datetime.time]] = {
                "date": datetime.date,
                "time": datetime.time,
                "datetime": datetime.datetime,
            }
            kind, value = kinds.get(node["dtm"]), node.get("v")
            if kind is None or type(value) is not str or len(value) > 64:
                raise self.bad(f"date/time {node['dtm']!r}")
            out = kind.fromisoformat(value)
            if type(node.get("zone")) is str:
                from zoneinfo import ZoneInfo

                if not isinstance(out, datetime.datetime | datetime.time):  # a date has no zone
                    raise self.bad(f"date/time {node['dtm']!r} with a zone")
                out = out.replace(tzinfo=ZoneInfo(node["zone"]))
            return out
        if tag == "td":
            days, secs, micro = (self._list(node["td"]) + [None] * 3)[:3]
            if not all(type(x) is int for x in (days, secs, micro)):
                raise self.bad("timedelta")
            return datetime.timedelta(days=days, seconds=secs, microseconds=micro)
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
        name = node.get("name")
        cls = BIT_GENERATORS.get(name) if type(name) is str else None
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
