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
import random
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np
import simpy
import xarray as xr

if TYPE_CHECKING:
    from city_models import City
    from scenarios import Scenario
    from twin.linkcontrol import LinkControl
    from twin.recorder import Recorder
    from twin.traffic import TrafficModel

__all__ = ["Component", "FACTORIES", "TwinView", "build_components", "component_kpi_labels"]

#: factories of the twin's components, in build order (interventions last: they act on the others)
FACTORIES: tuple[str, ...] = (
    "twin.emergency:build",
    "twin.population:build",
    "twin.interventions:build",
)


class TwinView(Protocol):
    """What a component may use of the :class:`~twin.model.Twin` it belongs to.

    Components receive the twin typed as this protocol: the clock, the city and
    scenario, the traffic model (read after :meth:`sync`), link changes through
    :attr:`link_control`, trips through :meth:`add_trips`, and the other
    components by name.  Anything else of the twin is not theirs to touch.
    """

    #: the scenario run
    scenario: Scenario
    #: the run's seed (components draw from :func:`twin.rng.component_rng` streams of it)
    seed: int
    #: clock time of day at the start, s
    start_s: float
    #: length of the run, s
    duration_s: float
    #: the SimPy clock (seconds since the start)
    env: simpy.Environment
    #: the city: network, zones, places
    city: City
    #: the traffic model (state valid after :meth:`sync`)
    traffic: TrafficModel
    #: every link change, with handles to undo each
    link_control: LinkControl
    #: the output sampler
    recorder: Recorder
    #: the components built so far, by name
    components: dict[str, Component]
    #: where each trip came from (``trip_table()["source"]`` indexes it; ``"scenario"`` first)
    trip_sources: list[str]
    #: Mesa's random generator of the model (given to agent sets; the twin's own draws use ``seed``)
    random: random.Random

    @property
    def now(self) -> float:
        """Seconds since the scenario start."""
        ...

    def clock_s(self, t: float | None = None) -> float:
        """Clock time of day in seconds at ``t`` (default: now)."""
        ...

    def sync(self) -> None:
        """Bring the traffic model up to the clock's current tick."""
        ...

    def add_trips(self, origin, destination, depart_s, *, source: str) -> np.ndarray:
        """Put trips on the road; returns the new vehicle ids."""
        ...

    def trip_table(self) -> dict[str, np.ndarray]:
        """Every trip put on the road so far."""
        ...


class Component:
    """Base class of a twin component (see the module docstring).

    Parameters
    ----------
    twin : TwinView
        The twin the component belongs to.
    """

    #: key in ``twin.components``
    name: ClassVar[str] = "component"
    #: KPI key -> (label, unit)
    kpi_labels: ClassVar[dict[str, tuple[str, str]]] = {}

    def __init__(self, twin: TwinView) -> None:
        self.twin = twin

    def start(self) -> None:
        """Register this component's SimPy processes from its records."""

    def sample(self, t: float) -> None:
        """Record one row of time series at output time ``t`` (end of the interval)."""

    def data_vars(self) -> dict[str, xr.Variable]:
        """Variables (and coordinates: names starting with ``coord:``) for the run's Dataset."""
        return {}

    def kpis(self) -> dict[str, float]:
        """KPI key -> value at the end of the run (keys as in :attr:`kpi_labels`)."""
        return {}


def _load(path: str):
    module, _, func = path.partition(":")
    return getattr(importlib.import_module(module), func)


def build_components(twin: TwinView) -> dict[str, Component]:
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
