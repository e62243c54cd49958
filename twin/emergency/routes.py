"""Routes of emergency units: where a unit is on its trip, and new trips from there.

A unit's trip is a record on the unit (``path``, ``path_t``, ``t_depart``, ``dest``);
:class:`UnitRoutes` reads and writes those records through the component's
:class:`~twin.emergency.dispatch.Router` and clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from basics.numeric import EPS as _EPS
from twin.emergency.resources import Unit

if TYPE_CHECKING:
    from twin.emergency.component import EmergencyComponent

__all__ = ["UnitRoutes"]


class UnitRoutes:
    """Unit trips on the road network (``comp.routes``).

    Parameters
    ----------
    comp : EmergencyComponent
        The emergency services whose units drive (its router, clock and link watch).
    """

    def __init__(self, comp: EmergencyComponent) -> None:
        self.comp = comp

    def where(self, unit: Unit) -> tuple[int, int, float]:
        """``(node, link in progress or -1, time at node)`` a new route starts from."""
        now = self.comp.now
        n = unit.path.shape[0]
        if n == 0 or not now > unit.t_depart + _EPS:  # not left yet (or leaving right now)
            return unit.node, -1, now
        k = unit.links_done(now)
        if k >= n:
            return unit.dest, -1, now
        dst = self.comp.twin.city.network.dst
        if k > 0 and unit.path_t[k - 1] >= now - _EPS:
            return int(dst[unit.path[k - 1]]), -1, now
        a = int(unit.path[k])
        return int(dst[a]), a, float(unit.path_t[k])

    def route(self, unit: Unit, dest: int, *, t0: float, from_here: bool = True, leaving: bool = False) -> bool:
        """Give ``unit`` a trip to ``dest`` leaving at ``t0`` (from where it is now); False if unreachable.

        ``leaving``: the unit leaves a node that others leave too (a scene, a hospital), so the
        route comes from the tree *from* there (shared with them and with the patient
        transport); otherwise from the tree to ``dest`` (shared by all heading there, like the
        dispatch centre's tree to a scene).
        """
        node, lead, t_node = self.where(unit) if from_here else (unit.node, -1, t0)
        r = self.comp.router.path_from(node, dest) if leaving and lead < 0 else self.comp.router.path_to(node, dest)
        if r is None:
            return False
        links, tts = r
        if lead >= 0:
            start = t_node
            links = np.concatenate([[lead], links]).astype(np.int32)
            times = np.empty(tts.shape[0] + 1)
            times[0] = 0.0
            np.add.accumulate(tts, out=times[1:])  # cheaper than cumsum on short arrays
            times += t_node
            unit.node = int(self.comp.twin.city.network.src[lead])
            unit.t_depart = min(self.comp.now, t0)
        else:
            start = max(t0, t_node)
            times = np.add.accumulate(tts)
            times += start
            unit.node = node
            unit.t_depart = start
        unit.path = links
        unit.path_t = np.asarray(times, np.float64)
        unit.dest = int(dest)
        if links.shape[0]:
            self.comp.watch_roads()
        return True

    def arrival_time(self, unit: Unit) -> float:
        """When the unit's current trip ends (its departure time without one)."""
        return float(unit.path_t[-1]) if unit.path.shape[0] else unit.t_depart

    def rest(self, unit: Unit) -> np.ndarray:
        """Links of its route the unit has not entered yet."""
        now = self.comp.twin.env.now
        if not unit.t_depart < now:
            return unit.path
        _, lead, _ = self.where(unit)
        return unit.path[unit.links_done(now) + (1 if lead >= 0 else 0) :]
