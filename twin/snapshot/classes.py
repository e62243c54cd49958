"""What a snapshot may hold: the registry of classes, functions and methods it rebuilds.

A snapshot names classes as ``"module:qualname"``; only a class defined in one of
:data:`SNAPSHOT_MODULES` (or listed in :data:`EXTRA_CLASSES`) is ever rebuilt, and only
those modules are ever imported for it.  A class that moved keeps loading from files
written before the move through :data:`MOVED_CLASSES`.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import numpy as np

__all__ = ["SNAPSHOT_MODULES", "MOVED_CLASSES", "EXTRA_CLASSES", "METHOD_OWNERS", "BIT_GENERATORS", "registry"]


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
    "twin.intervention_kinds",
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
    "twin.emergency.centre",
    "twin.emergency.component",
    "twin.emergency.control",
    "twin.emergency.dispatch",
    "twin.emergency.fleet",
    "twin.emergency.incidents",
    "twin.emergency.log",
    "twin.emergency.resources",
    "twin.emergency.routes",
    "twin.population.agents",
    "twin.population.component",
    "twin.population.outputs",
    "twin.population.policies",
    "twin.population.skim",
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
