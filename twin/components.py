"""The twin's parts beside traffic: interventions, emergency services, population, feeds.

Each part is a :class:`Component` built by a factory listed in :data:`FACTORIES`
(``"module:function"``, called with the :class:`~twin.model.Twin`; it returns a
component, or ``None`` when the scenario does not use that part).  The twin
builds them in that order, then calls :meth:`Component.start` on each, which
registers the component's SimPy processes.

The contract that keeps snapshots and forks possible (see DESIGN.md, "thin
drivers over data records"):

- a component keeps its state in plain records (numpy arrays, lists of small
  dataclasses, its random generator), never only in the local variables of a
  running generator;
- :meth:`start` builds its processes from those records alone, so a twin
  restored from a snapshot resumes by calling :meth:`start` again;
- it touches traffic state only after ``twin.sync()``.

Results: at every output interval the recorder calls :meth:`sample`; the
run's Dataset merges :meth:`data_vars`; the KPIs merge :meth:`kpis`, labelled
by :attr:`kpi_labels`.
"""

from __future__ import annotations

import importlib
from typing import ClassVar

import xarray as xr

__all__ = ["Component", "FACTORIES", "build_components", "component_kpi_labels"]

#: factories of the twin's components, in build order (interventions last: they act on the others)
FACTORIES: tuple[str, ...] = (
    "twin.emergency:build",
    "twin.population:build",
    "twin.interventions:build",
)


class Component:
    """Base class of a twin component (see the module docstring)."""

    #: key in ``twin.components``
    name: ClassVar[str] = "component"
    #: KPI key -> (label, unit)
    kpi_labels: ClassVar[dict[str, tuple[str, str]]] = {}

    def __init__(self, twin) -> None:
        self.twin = twin

    def start(self) -> None:
        """Register this component's SimPy processes from its records."""

    def sample(self, t: float) -> None:
        """Record one row of time series at output time ``t`` (end of the interval)."""

    def data_vars(self) -> dict[str, xr.Variable]:
        """Variables (and coordinates: names starting with ``coord:``) for the run's Dataset."""
        return {}

    def kpis(self) -> dict[str, float]:
        return {}


def _load(path: str):
    module, _, func = path.partition(":")
    return getattr(importlib.import_module(module), func)


def build_components(twin) -> dict[str, Component]:
    """Build the scenario's components, in :data:`FACTORIES` order."""
    out: dict[str, Component] = {}
    twin.components = out  # filled as they are built: a later component may look up an earlier one
    for path in FACTORIES:
        comp = _load(path)(twin)
        if comp is not None:
            out[comp.name] = comp
    return out


def component_kpi_labels() -> dict[str, tuple[str, str]]:
    """KPI labels of every known component type (for tables and reports)."""
    labels: dict[str, tuple[str, str]] = {}
    for path in FACTORIES:
        module = importlib.import_module(path.partition(":")[0])
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Component):
                labels.update(obj.kpi_labels)
    return labels
