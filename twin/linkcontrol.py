"""Changes to links during a run: closures, capacity, lanes and speed, composed and reverted exactly.

Interventions (road works, a closed bridge) and incidents (a crash taking a
lane, a flooded street) both change links, sometimes the same link at the same
time.  :class:`LinkControl` keeps every active change and recomputes the
affected links' parameters from the *network's own values* and the changes
still active, in the order they were applied.  Reverting the last change on a
link therefore restores its kernel parameters bit for bit, whatever happened
in between.

Composition, per link, over the active changes in order of application:

- ``lanes``: the last change that sets lanes wins; capacity and jam density
  scale by ``lanes / network lanes``;
- ``capacity_factor``: multiplies capacity (0 passes nobody);
- ``speed_mps``: the last speed limit set wins (free speed becomes that
  value), then ``speed_factor`` multiplies;
- ``closed``: any active closure closes the link (no vehicle may enter;
  those on it drive off).

A change that closes a link or removes its capacity re-routes at once (route
potentials exclude it); other changes reach routing at the next re-route.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from city_models import City
    from twin.traffic import TrafficModel

__all__ = ["LinkChange", "LinkControl", "LinkTwin"]

log = logging.getLogger(__name__)


class LinkTwin(Protocol):
    """What :class:`LinkControl` uses of the twin: the city, the traffic model, the clock, routing settings."""

    #: the city (its network's links are the ones changed)
    city: City
    #: the traffic model whose link parameters and routes change
    traffic: TrafficModel
    #: whether routes follow travel times as they change (else: free-flow routes)
    dynamic_routing: bool
    #: seconds between route updates under dynamic routing
    reroute_s: float

    @property
    def now(self) -> float:
        """Seconds since the scenario start."""
        ...

    def sync(self) -> None:
        """Bring the traffic model up to the clock's current tick."""
        ...


@dataclass(frozen=True)
class LinkChange:
    """One active change to a set of links."""

    handle: int
    source: str
    links: np.ndarray
    closed: bool = False
    capacity_factor: float = 1.0
    speed_factor: float = 1.0
    speed_mps: float | None = None
    lanes: float | None = None
    applied_s: float = 0.0

    @property
    def blocks(self) -> bool:
        """Whether it stops traffic (so routes must change now)."""
        return self.closed or self.capacity_factor == 0.0


@dataclass
class LinkControl:
    """The active link changes of one twin (see the module docstring).

    Attributes
    ----------
    active : dict
        handle -> :class:`LinkChange`, in order of application.
    history : list of tuple
        ``(time_s, "apply" | "revert", handle, source, links)`` for every change.
    """

    twin: LinkTwin
    active: dict[int, LinkChange] = field(default_factory=dict)
    history: list[tuple] = field(default_factory=list)
    next_handle: int = 0
    #: link -> handles of the active changes on it, in order of application
    by_link: dict[int, list[int]] = field(default_factory=dict, repr=False)

    def apply(
        self,
        links,
        *,
        source: str,
        closed: bool = False,
        capacity_factor: float = 1.0,
        speed_factor: float = 1.0,
        speed_mps: float | None = None,
        lanes: float | None = None,
    ) -> int:
        """Apply a change to ``links`` (link indices) from now on; returns its handle."""
        net = self.twin.city.network
        idx = np.unique(np.asarray(links, np.int64).ravel())
        if idx.size == 0:
            raise ValueError(f"{source}: a link change needs at least one link")
        if idx.min() < 0 or idx.max() >= net.n_links:
            raise ValueError(f"{source}: link index out of range 0..{net.n_links - 1}")
        for name, value, ok in (
            ("capacity_factor", capacity_factor, capacity_factor >= 0),
            ("speed_factor", speed_factor, speed_factor > 0),
            ("speed_mps", speed_mps, speed_mps is None or speed_mps > 0),
            ("lanes", lanes, lanes is None or lanes > 0),
        ):
            if value is not None and (not math.isfinite(value) or not ok):
                raise ValueError(f"{source}: {name} must be a positive finite number, got {value!r}")
        self.twin.sync()
        h = self.next_handle
        self.next_handle += 1
        change = LinkChange(
            handle=h,
            source=source,
            links=idx,
            closed=bool(closed),
            capacity_factor=float(capacity_factor),
            speed_factor=float(speed_factor),
            speed_mps=None if speed_mps is None else float(speed_mps),
            lanes=None if lanes is None else float(lanes),
            applied_s=self.twin.now,
        )
        self.active[h] = change
        self._touch(change, +1)
        self.history.append((self.twin.now, "apply", h, source, idx))
        self._refresh(idx, reroute=change.blocks)
        log.info("t=%.0f s: %s changes %d link(s)", self.twin.now, source, idx.size)
        return h

    def revert(self, handle: int) -> None:
        """End an active change; its links return to what the other active changes say."""
        change = self.active.pop(handle, None)
        if change is None:
            raise KeyError(f"no active link change with handle {handle}")
        self._touch(change, -1)
        self.twin.sync()
        self.history.append((self.twin.now, "revert", handle, change.source, change.links))
        self._refresh(change.links, reroute=change.blocks)

    def _touch(self, change: LinkChange, sign: int) -> None:
        for link in change.links.tolist():
            if sign > 0:
                self.by_link.setdefault(link, []).append(change.handle)
            else:
                self.by_link[link].remove(change.handle)
                if not self.by_link[link]:
                    del self.by_link[link]

    # ------------------------------------------------------------------
    def effective(self, links) -> dict[str, np.ndarray]:
        """Capacity, free speed, jam density and open flag of ``links`` under the active changes."""
        net = self.twin.city.network
        idx = np.asarray(links, np.int64)
        cap = net.capacity_vph[idx].astype(np.float64)
        vf = net.free_speed_mps[idx].astype(np.float64)
        kj = net.jam_density_vpm[idx].astype(np.float64)
        is_open = np.ones(idx.size, np.uint8)
        for k, link in enumerate(idx.tolist()):
            handles = self.by_link.get(link)
            if not handles:
                continue
            lanes = base_lanes = float(net.lanes[link])
            cap_f = speed_f = 1.0
            for h in handles:  # in order of application
                change = self.active[h]
                if change.lanes is not None:
                    lanes = change.lanes
                if change.speed_mps is not None:
                    vf[k] = change.speed_mps
                cap_f *= change.capacity_factor
                speed_f *= change.speed_factor
                if change.closed:
                    is_open[k] = 0
            if lanes != base_lanes:  # leave untouched values bit-identical
                cap[k] *= lanes / base_lanes
                kj[k] *= lanes / base_lanes
            if cap_f != 1.0:
                cap[k] *= cap_f
            if speed_f != 1.0:
                vf[k] *= speed_f
        return {"capacity_vph": cap, "free_speed_mps": vf, "jam_density_vpm": kj, "is_open": is_open}

    def changed_links(self, *, source_prefix: str = "") -> np.ndarray:
        """Links any change (from sources starting with ``source_prefix``) has touched so far."""
        hit = [
            links
            for _, action, _, source, links in self.history
            if action == "apply" and source.startswith(source_prefix)
        ]
        return np.unique(np.concatenate(hit)) if hit else np.zeros(0, np.int64)

    def _refresh(self, idx: np.ndarray, *, reroute: bool) -> None:
        tw = self.twin
        tw.traffic.set_link_params(idx, **self.effective(idx))
        if reroute and tw.dynamic_routing:
            tw.traffic.update_routes(tw.reroute_s)
        elif reroute:
            tw.traffic.update_routes(math.inf)
