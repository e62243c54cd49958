"""What-if interventions: the scenario's ``interventions:`` timeline, applied and reverted on the clock.

Each entry becomes a record (:class:`Planned`) resolved against the city when
the twin is built, so an unknown road, zone or station is an error before
anything runs.  One small SimPy process per entry applies it at ``at`` and
reverts it at ``until``; the record says how far it got, so a restored twin
resumes from it (:meth:`Interventions.start`).

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
from typing import ClassVar

import numpy as np
import xarray as xr

from basics.clock import parse_time_point
from twin.components import Component
from basics.errors import InputError
from twin.places import resolve_links, resolve_nodes, resolve_zones
from twin.rng import component_rng

__all__ = ["Interventions", "Planned", "build", "ensure", "retime_windows"]

log = logging.getLogger(__name__)

_LINK_KINDS = ("close", "capacity", "lanes", "speed")


@dataclass
class Planned:
    """One intervention on the timeline and how far it got."""

    index: int
    spec: object  # the validated scenario entry
    label: str
    at_s: float
    until_s: float  # inf: to the end
    links: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    nodes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    zones: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    state: str = "pending"  # pending -> active -> done
    applied_s: float = math.nan
    reverted_s: float = math.nan
    #: what apply() changed, so revert() can undo it (link handle, saved signal arrays, trip ids...)
    undo: dict = field(default_factory=dict)
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
    phases = sorted({(float(a), float(b)) for a, b in zip(gs[ctl], ge[ctl])})
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
        fav = {(float(a), float(b)) for a, b in zip(gs[ctl & favoured], ge[ctl & favoured])}
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
    for (a, b), g, gap in zip(phases, new_green, gaps):
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
        tw = self.twin
        where = f"{where_prefix}[{i}] ({spec.kind}{': ' + spec.name if spec.name else ''})"
        at = self._time(spec.at, origin_s)
        until = math.inf if spec.until is None else self._time(spec.until, origin_s)
        if until <= at:
            raise InputError(f"{where}: 'until' ({spec.until}) is not after 'at' ({spec.at})")
        p = Planned(index=i, spec=spec, label=spec.name or f"{spec.kind} #{i}", at_s=at, until_s=until)
        city = tw.city
        if spec.kind in _LINK_KINDS:
            p.links = resolve_links(
                city, links=spec.links, road=spec.road, place=spec.place, near=spec.near, where=where
            )
        elif spec.kind == "signal":
            nodes = resolve_nodes(city, nodes=spec.nodes, road=spec.road, near=spec.near, where=where)
            signalised = nodes[tw.city.network.signal_cycle_s[nodes] > 0]
            if signalised.size == 0:
                raise InputError(f"{where}: none of the {nodes.size} node(s) named has a signal")
            p.nodes = signalised
            if spec.favour is not None:
                f = spec.favour
                p.links = resolve_links(
                    city, links=f.links, road=f.road, place=f.place, near=f.near, where=where + ".favour"
                )
        elif spec.kind in ("cordon", "evacuation") or (spec.kind == "demand" and spec.zones is not None):
            p.zones = resolve_zones(city, spec.zones, where=where + ".zones")
        if spec.kind in ("work_from_home", "evacuation") and "population" not in self._available():
            raise InputError(
                f"{where}: a {spec.kind} policy acts on people: it needs a 'population' section "
                "(for a trips table or gravity demand, use kind: demand with a scale)"
            )
        if spec.kind in ("station_out", "station_add") and "emergency" not in self._available():
            raise InputError(
                f"{where}: stations belong to the emergency services: the scenario needs "
                f"an 'incidents' section (e.g. incidents: {{enabled: true}}) for a {spec.kind}"
            )
        if spec.kind == "station_add":
            if spec.node is not None:
                p.nodes = resolve_nodes(city, nodes=[spec.node], where=where)
            else:
                p.nodes = resolve_nodes(city, near=spec.near, where=where)
        return p

    def _available(self) -> set[str]:
        """Components built before this one (the twin builds interventions last)."""
        return set(self.twin.components)

    # ------------------------------------------------------------ clock
    def start(self) -> None:
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
        getattr(self, f"_apply_{p.spec.kind}")(p)
        p.state = "active"
        p.applied_s = tw.now
        log.info("t=%.0f s: applied %s", tw.now, p.label)

    def _revert(self, p: Planned) -> None:
        tw = self.twin
        tw.sync()
        undo = getattr(self, f"_revert_{p.spec.kind}", None)
        if undo is not None:
            undo(p)
        p.state = "done"
        p.reverted_s = tw.now
        log.info("t=%.0f s: reverted %s", tw.now, p.label)

    # ------------------------------------------------------------ links
    def _link_change(self, p: Planned, **kw) -> None:
        p.undo["handle"] = self.twin.link_control.apply(p.links, source=f"intervention {p.label}", **kw)

    def _apply_close(self, p):
        self._link_change(p, closed=True)

    def _apply_capacity(self, p):
        self._link_change(p, capacity_factor=p.spec.factor)

    def _apply_lanes(self, p):
        self._link_change(p, lanes=p.spec.lanes)

    def _apply_speed(self, p):
        s = p.spec
        self._link_change(
            p,
            speed_mps=None if s.speed_kmh is None else s.speed_kmh / 3.6,
            speed_factor=1.0 if s.factor is None else s.factor,
        )

    def _revert_link(self, p):
        self.twin.link_control.revert(p.undo.pop("handle"))

    _revert_close = _revert_capacity = _revert_lanes = _revert_speed = _revert_link

    # ------------------------------------------------------------ signals
    def _apply_signal(self, p):
        tm = self.twin.traffic
        g = tm.graph
        s = p.spec
        saved = {
            "cycle": tm.nodes.cycle[p.nodes].copy(),
            "offset": tm.nodes.offset[p.nodes].copy(),
            "links": [],
            "gs": [],
            "ge": [],
        }
        for n in p.nodes:
            inl = g.in_links[g.in_indptr[n] : g.in_indptr[n + 1]].astype(np.int64)
            gs, ge = tm.links.green_start[inl].copy(), tm.links.green_end[inl].copy()
            saved["links"].append(inl)
            saved["gs"].append(gs)
            saved["ge"].append(ge)
            favoured = np.isin(inl, p.links)
            try:
                c, ngs, nge = retime_windows(
                    float(tm.nodes.cycle[n]), gs, ge, favoured, new_cycle=s.cycle, green_share=s.green_share
                )
            except ValueError as exc:
                raise InputError(f"interventions[{p.index}] ({p.label}) at node {int(n)}: {exc}") from None
            off = tm.nodes.offset[n] if s.offset is None else s.offset
            tm.set_signal_plan([n], cycle_s=c, offset_s=off, links=inl, green_start_s=ngs, green_end_s=nge)
        p.undo["signal"] = saved

    def _revert_signal(self, p):
        tm = self.twin.traffic
        saved = p.undo.pop("signal")
        tm.set_signal_plan(p.nodes, cycle_s=saved["cycle"], offset_s=saved["offset"])
        for inl, gs, ge in zip(saved["links"], saved["gs"], saved["ge"]):
            tm.set_signal_plan([], cycle_s=[], offset_s=[], links=inl, green_start_s=gs, green_end_s=ge)

    # ------------------------------------------------------------ demand
    def _pending_in_window(self, p: Planned) -> np.ndarray:
        """Vehicles not yet departed whose departure falls in the intervention's window."""
        from kernels.traffic import VEH_PENDING

        veh = self.twin.traffic.veh
        now = self.twin.now
        return np.flatnonzero((veh.link == VEH_PENDING) & (veh.depart >= now) & (veh.depart < p.until_s))

    def _apply_demand(self, p):
        tw = self.twin
        s = p.spec
        ids = self._pending_in_window(p)
        table = tw.trip_table()
        if p.zones.size:
            zone_of = tw.city.zones.node_zone
            ids = ids[np.isin(zone_of[table["origin"][ids]], p.zones)]
        if s.scale < 1.0:
            drop = ids[self.rng.random(ids.size) < 1.0 - s.scale]
            p.effect["cancelled"] = int(tw.traffic.cancel_trips(drop).size)
        elif s.scale > 1.0:
            extra = s.scale - 1.0
            copies = np.floor(extra).astype(np.int64) + (self.rng.random(ids.size) < extra % 1.0)
            src = np.repeat(ids, copies)
            jitter = self.rng.uniform(-300.0, 300.0, src.size)
            depart = np.clip(tw.traffic.veh.depart[src] + jitter, tw.now, p.until_s - 1e-6)
            new = tw.add_trips(table["origin"][src], table["destination"][src], depart, source="demand change")
            p.effect["added"] = int(new.size)

    def _apply_cordon(self, p):
        tw = self.twin
        s = p.spec
        pop = tw.components.get("population")
        if pop is not None:
            pop.set_cordon(p.label, p.zones, float(s.price), until_s=None if math.isinf(p.until_s) else p.until_s)
        ids = self._pending_in_window(p)
        table = tw.trip_table()
        if "population" in tw.trip_sources:  # agents decide for themselves; the rest are trips that were given
            ids = ids[table["source"][ids] != tw.trip_sources.index("population")]
        zone_of = tw.city.zones.node_zone
        inside_o = np.isin(zone_of[table["origin"][ids]], p.zones)
        inside_d = np.isin(zone_of[table["destination"][ids]], p.zones)
        crossing = ids[inside_o != inside_d]
        drop = crossing[self.rng.random(crossing.size) < 1.0 - math.exp(-s.price_sensitivity * s.price)]
        p.effect["crossing"] = int(crossing.size)
        p.effect["cancelled"] = int(tw.traffic.cancel_trips(drop).size)

    def _revert_cordon(self, p):
        pop = self.twin.components.get("population")
        if pop is not None:
            pop.clear_cordon(p.label)

    # ------------------------------------------------------------ people and stations
    def _apply_work_from_home(self, p):
        pop = self.twin.components["population"]
        p.undo["share"] = getattr(pop, "work_from_home_share", 0.0)
        pop.set_work_from_home(float(p.spec.share))

    def _revert_work_from_home(self, p):
        self.twin.components["population"].set_work_from_home(float(p.undo.pop("share")))

    def _apply_evacuation(self, p):
        s = p.spec
        shelters = None
        if s.shelters is not None:
            shelters = resolve_nodes(self.twin.city, nodes=s.shelters, where=f"interventions[{p.index}].shelters")
        self.twin.components["population"].order_evacuation(
            p.zones,
            compliance=float(s.compliance),
            delay_mean_s=float(s.delay_mean),
            delay_sd_s=float(s.delay_sd),
            shelters=shelters,
        )

    def _apply_station_out(self, p):
        self.twin.components["emergency"].set_station_in_service(p.spec.station, False)

    def _revert_station_out(self, p):
        self.twin.components["emergency"].set_station_in_service(p.spec.station, True)

    def _apply_station_add(self, p):
        s = p.spec
        node_id = int(self.twin.city.network.node_osmid[p.nodes[0]])
        self.twin.components["emergency"].add_station(s.station, s.station_kind, node_id, dict(s.units))

    def _revert_station_add(self, p):
        self.twin.components["emergency"].remove_station(p.spec.station)

    # ------------------------------------------------------------ results
    def intervened_links(self) -> np.ndarray:
        """Links any link or signal intervention touched (for maps)."""
        parts = [p.links for p in self.planned if p.spec.kind in _LINK_KINDS and p.state != "pending"]
        g = self.twin.traffic.graph
        for p in self.planned:
            if p.spec.kind == "signal" and p.state != "pending":
                parts += [g.in_links[g.in_indptr[n] : g.in_indptr[n + 1]] for n in p.nodes]
        return np.unique(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)

    def data_vars(self) -> dict[str, xr.Variable]:
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
