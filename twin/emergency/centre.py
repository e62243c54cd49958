"""The dispatch centre: which free units go to which waiting incidents.

Each round takes the queued incidents by priority and asks the dispatch policy
(:mod:`twin.emergency.dispatch`) to choose among the candidates of each kind an
incident still needs; chosen units get a route and a turnout time.  The queue,
the units and the incidents are the component's records.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from basics.numeric import EPS as _EPS
from twin.emergency.dispatch import POLICIES, Candidates, check_choice
from twin.emergency.incidents import Incident, draw
from twin.emergency.resources import DISPATCHABLE, DISPATCHED, ENROUTE, RETURNING, Unit

if TYPE_CHECKING:
    from twin.emergency.component import EmergencyComponent

__all__ = ["DispatchCentre"]

#: the built-in policies choose among reachable candidates by construction (no check needed)
_TRUSTED = tuple(POLICIES.values())


class DispatchCentre:
    """Dispatch rounds over the component's queue (``comp.centre``).

    Parameters
    ----------
    comp : EmergencyComponent
        The emergency services it dispatches (queue, units, incidents, policy, log).
    """

    def __init__(self, comp: EmergencyComponent) -> None:
        self.comp = comp
        #: some queued incident needs a kind with free units that cannot reach it (the roads are watched)
        self.blocked = False
        #: units sent from mutual-aid stations so far
        self.mutual_aid_dispatches = 0

    def candidates(self, kind: str, dist: np.ndarray, inc: Incident, *, free: np.ndarray | None = None) -> Candidates:
        """Units of ``kind`` that may be sent now, with their current travel time to ``inc``.

        ``dist`` is the travel time from every node to the incident; ``free`` the mask of
        units free to send (default: computed now).
        """
        now = self.comp.twin.env.now
        fleet = self.comp.fleet
        ids = fleet.of_kind(kind, fleet.free_mask() if free is None else free)
        st = fleet.stations_of(ids)
        nodes = fleet.station_nodes(st)  # units at their station
        lag = np.zeros(ids.size)
        units = fleet.units
        for j in fleet.returning(ids).tolist():  # driving home: from where they are
            node, _, t_node = self.comp.routes.where(units[ids[j]])
            nodes[j] = node
            lag[j] = t_node - now
        travel = dist[nodes]
        travel += lag

        def free_flow() -> np.ndarray:
            return self.comp.router.free_tree_to(inc.node)[nodes] + lag

        return Candidates(
            kind=kind,
            units=ids,
            travel_s=travel,
            mutual_aid=fleet.mutual_aid(st),
            station=st,
            free_flow_fn=free_flow,
            any_mutual_aid=None if fleet.any_mutual_aid else False,
        )

    def dispatch_round(self) -> None:
        """Send free units to the queued incidents, highest priority first, then note who still waits."""
        book = self.comp.book
        if not book.queue:
            self.blocked = False
            return
        fleet = self.comp.fleet
        mask = fleet.free_mask()
        free = fleet.free_by_kind(mask)
        order = book.waiting()
        trusted = self.comp.policy in _TRUSTED
        for i in order:
            inc = book[i]
            kinds = [k for k, n in inc.need.items() if n > 0 and free.get(k, 0) > 0]
            if kinds:
                dist, _ = self.comp.router.tree_to(inc.node)
                for kind in kinds:
                    n = inc.need[kind]
                    cand = self.candidates(kind, dist, inc, free=mask)
                    chosen = self.comp.policy(inc, kind, n, cand)
                    if not trusted:  # the built-in policies choose among reachable candidates by construction
                        chosen = check_choice(chosen, cand, n, policy_name=self.comp.policy_name, incident_id=inc.id)
                    for u in chosen:
                        self.assign(fleet.units[u], inc, float(cand.travel_s[cand.units.searchsorted(u)]))
                        mask[u] = False
                    free[kind] -= len(chosen)
            if sum(inc.need.values()) == 0:
                book.dequeue(i)
            elif not inc.waited:
                inc.waited = True
                self.comp.log.add(
                    self.comp.now,
                    "queued",
                    inc.id,
                    node=inc.node,
                    detail="waiting for " + ", ".join(f"{n} {k}" for k, n in inc.need.items() if n),
                )
        book.note_waiting()
        # a free unit of a kind some queued incident needs could not reach it: watch the roads
        self.blocked = any(free.get(k, 0) > 0 for i in book.queue for k in book[i].need)
        if self.blocked:
            self.comp.watch_roads()

    def assign(self, unit: Unit, inc: Incident, travel_s: float) -> None:
        """Send ``unit`` to ``inc``: its route, turnout, the records and the log."""
        now = self.comp.now
        if unit.state not in DISPATCHABLE or unit.incident >= 0:
            raise RuntimeError(f"internal error: unit {unit.id} sent while {unit.state}")
        rolling = unit.state == RETURNING
        t0 = now if rolling else now + draw(self.comp.spec.turnout, self.comp.rng_units)
        if not self.comp.routes.route(unit, inc.node, t0=t0):
            raise RuntimeError(f"internal error: unit {unit.id} has no route to incident {inc.id}")
        unit.incident = inc.id
        unit.busy_since = now
        unit.dispatches += 1
        inc.assigned.append(unit.id)
        inc.units_sent += 1
        inc.need[unit.kind] -= 1
        if inc.need[unit.kind] <= 0:
            del inc.need[unit.kind]
        if math.isnan(inc.t_dispatched):
            inc.t_dispatched = now
        st = self.comp.fleet.stations[unit.station]
        if st.mutual_aid:
            self.mutual_aid_dispatches += 1
        self.comp.log.add(
            now,
            "dispatched",
            inc.id,
            unit.id,
            unit.node,
            detail=f"from {st.name}{' (mutual aid)' if st.mutual_aid else ''}; travel {travel_s:.0f} s",
        )
        if unit.t_depart <= now + _EPS:
            self.comp.fleet.set_state(unit, ENROUTE)
            if math.isnan(inc.t_enroute):
                inc.t_enroute = now
            self.comp.log.add(now, "en_route", inc.id, unit.id, unit.node)
            self.comp.set_next(("u", unit.id), self.comp.routes.arrival_time(unit))
        else:
            self.comp.fleet.set_state(unit, DISPATCHED)
            self.comp.set_next(("u", unit.id), unit.t_depart)
