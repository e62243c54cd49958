"""What-if interventions: the scenario's ``interventions:`` timeline, applied and reverted on the clock.

Each entry becomes a record (:class:`Planned`) resolved against the city when
the twin is built, so an unknown road, zone or station is an error before
anything runs.  One small SimPy process per entry applies it at ``at`` and
reverts it at ``until``; the record says how far it got, so a restored twin
resumes from it (:meth:`Interventions.start`).

Each kind has a handler in :data:`twin.intervention_kinds.KINDS` (kind name ->
handler class) that resolves its targets and applies it, returning the handle
that undoes it; reverting goes through that handle only.

Link changes (close, capacity, lanes, speed) go through
:class:`~twin.linkcontrol.LinkControl`, so reverting restores the link
parameters exactly even when incidents change the same links meanwhile.
Signal plans are saved and restored per node.  Demand changes and cordons
act on trips not yet departed; policies aimed at people (work from home,
evacuation, and cordon prices for agents) are handed to the population
component, and station changes to the emergency component.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import xarray as xr

from basics.clock import parse_time_point
from basics.errors import InputError
from twin.components import Component
from twin.intervention_kinds import LINK_KINDS, Undo, handler_for
from twin.rng import component_rng

if TYPE_CHECKING:
    from scenarios.interventions import InterventionSpec

__all__ = ["Interventions", "Planned", "build", "ensure", "retime_windows"]

log = logging.getLogger(__name__)


@dataclass
class Planned:
    """One intervention on the timeline and how far it got."""

    index: int
    spec: InterventionSpec  # the validated scenario entry
    label: str
    at_s: float
    until_s: float  # inf: to the end
    links: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    nodes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    zones: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    state: str = "pending"  # pending -> active -> done
    applied_s: float = math.nan
    reverted_s: float = math.nan
    #: the handle that undoes what the apply changed (None: nothing to undo, or not applied yet)
    handle: Undo | None = None
    #: numbers for the log: trips cancelled / added
    effect: dict = field(default_factory=dict)


def retime_windows(
    cycle: float,
    gs: np.ndarray,
    ge: np.ndarray,
    favoured: np.ndarray,
    *,
    new_cycle: float | None,
    green_share: float | None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """New green windows for one node's in-links.

    The node's phases are its distinct green windows, in the order they start.
    Intergreens (the gaps between one phase's end and the next one's start)
    keep their length; the green time left in the (new) cycle goes to the
    phase serving the ``favoured`` in-links in the share ``green_share``, and
    to the other phases in proportion to their present greens.

    Parameters
    ----------
    cycle
        Present cycle, s.
    gs, ge
        Present window of each in-link (``gs == ge``: not controlled).
    favoured
        Boolean mask of the in-links whose phase gets ``green_share``.
    new_cycle, green_share
        Either may be ``None`` (keep the cycle / scale every phase alike).

    Returns
    -------
    cycle, gs, ge
    """
    gs = np.asarray(gs, np.float64)
    ge = np.asarray(ge, np.float64)
    ctl = gs != ge
    phases = sorted({(float(a), float(b)) for a, b in zip(gs[ctl], ge[ctl], strict=False)})
    if not phases or cycle <= 0:
        return cycle, gs.copy(), ge.copy()
    green = np.array([(b - a) % cycle for a, b in phases])
    gaps = np.array([(phases[(i + 1) % len(phases)][0] - phases[i][1]) % cycle for i in range(len(phases))])
    c = float(new_cycle) if new_cycle is not None else float(cycle)
    total = c - gaps.sum()
    if total <= len(phases):
        raise ValueError(f"a cycle of {c:.0f} s leaves no green time after the {gaps.sum():.0f} s of intergreens")
    new_green = green / green.sum() * total
    if green_share is not None and favoured.any():
        fav = {(float(a), float(b)) for a, b in zip(gs[ctl & favoured], ge[ctl & favoured], strict=False)}
        is_fav = np.array([p in fav for p in phases])
        if is_fav.all() or not is_fav.any():
            pass  # every phase (or none) is favoured: nothing to shift
        else:
            rest = green[~is_fav]
            new_green = np.empty_like(green)
            new_green[is_fav] = green[is_fav] / green[is_fav].sum() * total * green_share
            new_green[~is_fav] = rest / rest.sum() * total * (1.0 - green_share)
    out_gs, out_ge = gs.copy(), ge.copy()
    start = phases[0][0]
    for (a, b), g, gap in zip(phases, new_green, gaps, strict=False):
        sel = ctl & (gs == a) & (ge == b)
        out_gs[sel] = start % c
        out_ge[sel] = (start + g) % c
        start = start + g + gap
    return c, out_gs, out_ge


class Interventions(Component):
    """The scenario's intervention timeline (component name ``"interventions"``)."""

    name = "interventions"
    kpi_labels: ClassVar[dict[str, tuple[str, str]]] = {
        "interventions_applied": ("Interventions applied", ""),
        "trips_dropped_by_policy": ("Trips not made because of a policy", ""),
    }

    def __init__(self, twin) -> None:
        super().__init__(twin)
        self.rng = component_rng(twin.seed, "interventions")
        self.planned: list[Planned] = []
        for i, spec in enumerate(twin.scenario.interventions):
            self.planned.append(self._resolve(i, spec))

    # ------------------------------------------------------------ resolve
    def add(self, specs, *, label: str = "fork") -> list[Planned]:
        """Add interventions from now on (a fork of a running twin).

        Times are read from *now*: a clock time ``"HH:MM"`` is its next
        occurrence, a duration (``0``, ``"30min"``) counts from now.
        """
        start = len(self.planned)
        new = [
            self._resolve(start + k, spec, origin_s=self.twin.now, where_prefix=label) for k, spec in enumerate(specs)
        ]
        self.planned.extend(new)
        for p in new:
            self.twin.env.process(self._drive(p))
        return new

    def _time(self, value, origin_s: float | None) -> float:
        tw = self.twin
        if origin_s is None:
            return parse_time_point(value, start_s=tw.start_s)
        # from a moment in the run: clock times at or after it, durations after it
        return origin_s + parse_time_point(value, start_s=tw.start_s + origin_s)

    def _resolve(self, i: int, spec, *, origin_s: float | None = None, where_prefix: str = "interventions") -> Planned:
        where = f"{where_prefix}[{i}] ({spec.kind}{': ' + spec.name if spec.name else ''})"
        at = self._time(spec.at, origin_s)
        until = math.inf if spec.until is None else self._time(spec.until, origin_s)
        if until <= at:
            raise InputError(f"{where}: 'until' ({spec.until}) is not after 'at' ({spec.at})")
        p = Planned(index=i, spec=spec, label=spec.name or f"{spec.kind} #{i}", at_s=at, until_s=until)
        handler_for(self, spec.kind).resolve(p, where=where)
        return p

    # ------------------------------------------------------------ clock
    def start(self) -> None:
        """Register a process per intervention not yet done (it resumes from the record)."""
        for p in self.planned:
            if p.state != "done":
                self.twin.env.process(self._drive(p))

    def _drive(self, p: Planned):
        env = self.twin.env
        if p.state == "pending":
            yield env.timeout(max(p.at_s - env.now, 0.0))
            self._apply(p)
        if math.isfinite(p.until_s):
            yield env.timeout(max(p.until_s - env.now, 0.0))
            self._revert(p)

    def _apply(self, p: Planned) -> None:
        tw = self.twin
        tw.sync()
        p.handle = handler_for(self, p.spec.kind).apply(p)
        p.state = "active"
        p.applied_s = tw.now
        log.info("t=%.0f s: applied %s", tw.now, p.label)

    def _revert(self, p: Planned) -> None:
        tw = self.twin
        tw.sync()
        if p.handle is not None:
            p.handle.revert(tw)
            p.handle = None
        p.state = "done"
        p.reverted_s = tw.now
        log.info("t=%.0f s: reverted %s", tw.now, p.label)

    # ------------------------------------------------------------ results
    def intervened_links(self) -> np.ndarray:
        """Links any link or signal intervention touched (for maps)."""
        parts = [p.links for p in self.planned if p.spec.kind in LINK_KINDS and p.state != "pending"]
        g = self.twin.traffic.graph
        for p in self.planned:
            if p.spec.kind == "signal" and p.state != "pending":
                parts += [g.in_links[g.in_indptr[n] : g.in_indptr[n + 1]] for n in p.nodes]
        return np.unique(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)

    def data_vars(self) -> dict[str, xr.Variable]:
        """Per-link flags and one row per intervention for the run's Dataset."""
        nl = self.twin.city.network.n_links
        flag = np.zeros(nl, np.int8)
        flag[self.intervened_links()] = 1
        P = self.planned
        return {
            "link_intervened": xr.Variable(
                ("link",),
                flag,
                attrs={"units": "1", "long_name": "link changed by an intervention (or at a retimed signal)"},
            ),
            "coord:intervention": xr.Variable(
                ("intervention",),
                np.arange(len(P), dtype=np.int64),
                attrs={"units": "1", "long_name": "intervention index"},
            ),
            "intervention_kind": xr.Variable(
                ("intervention",),
                np.array([p.spec.kind for p in P], dtype=str),
                attrs={"units": "1", "long_name": "kind"},
            ),
            "intervention_name": xr.Variable(
                ("intervention",), np.array([p.label for p in P], dtype=str), attrs={"units": "1", "long_name": "name"}
            ),
            "intervention_applied_s": xr.Variable(
                ("intervention",),
                np.array([p.applied_s for p in P], np.float64),
                attrs={"units": "s", "long_name": "applied at (NaN: not yet)"},
            ),
            "intervention_reverted_s": xr.Variable(
                ("intervention",),
                np.array([p.reverted_s for p in P], np.float64),
                attrs={"units": "s", "long_name": "reverted at (NaN: not yet or never)"},
            ),
            "intervention_trips_cancelled": xr.Variable(
                ("intervention",),
                np.array([p.effect.get("cancelled", 0) for p in P], np.int64),
                attrs={"units": "1", "long_name": "trips the intervention cancelled"},
            ),
            "intervention_trips_added": xr.Variable(
                ("intervention",),
                np.array([p.effect.get("added", 0) for p in P], np.int64),
                attrs={"units": "1", "long_name": "trips the intervention added"},
            ),
        }

    def kpis(self) -> dict[str, float]:
        """Interventions applied and trips they dropped."""
        return {
            "interventions_applied": sum(p.state != "pending" for p in self.planned),
            "trips_dropped_by_policy": sum(p.effect.get("cancelled", 0) for p in self.planned),
        }


def build(twin):
    """The interventions component, or ``None`` when the scenario has none."""
    if not twin.scenario.interventions:
        return None
    return Interventions(twin)


def ensure(twin) -> Interventions:
    """The twin's interventions component, created (empty) if it has none (for forks)."""
    comp = twin.components.get("interventions")
    if comp is None:
        comp = Interventions.__new__(Interventions)
        Component.__init__(comp, twin)
        comp.rng = component_rng(twin.seed, "interventions")
        comp.planned = []
        twin.components["interventions"] = comp
    return comp
