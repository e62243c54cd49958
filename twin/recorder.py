"""KPI recording: a SimPy process that samples the traffic model every interval."""

from __future__ import annotations

import numpy as np

from twin.clock import PRIORITY, schedule_at

__all__ = ["Recorder"]


class Recorder:
    """Collects link and network time series at a fixed interval on the twin's clock.

    Rows are kept as plain arrays; :func:`twin.results.build_dataset` turns them
    into an :class:`xarray.Dataset`.  The time label of a row is the *end* of
    its interval.
    """

    def __init__(self, twin, *, interval_s: float) -> None:
        if not interval_s > 0:
            raise ValueError(f"output interval must be positive, got {interval_s!r}")
        self.twin = twin
        self.interval_s = float(interval_s)
        self.next_s = self.interval_s  # time of the next sample (kept for snapshots)
        self.time: list[float] = []
        self.link: dict[str, list[np.ndarray]] = {"inflow": [], "outflow": [], "vehicles": [], "speed": []}
        self.network: dict[str, list[float]] = {
            "on_network": [],
            "waiting": [],
            "arrived": [],
            "departed": [],
            "stranded": [],
        }
        #: per interval, the links' state under :class:`~twin.linkcontrol.LinkControl` at its end
        self.control: dict[str, list[np.ndarray]] = {"closed": [], "capacity_share": []}

    def __setstate__(self, state: dict) -> None:
        # a snapshot written before these series were recorded: they start empty here
        # (:func:`twin.results.build_dataset` marks the intervals before as not recorded)
        state["network"].setdefault("stranded", [])
        state.setdefault("control", {"closed": [], "capacity_share": []})
        self.__dict__.update(state)

    def process(self):
        """The SimPy process: sample at the end of every interval, before anything else acts then."""
        env = self.twin.env
        while True:
            yield schedule_at(env, self.next_s, PRIORITY["urgent"])
            self.next_s = env.now + self.interval_s
            self.twin.sync()
            self.sample()

    def sample(self) -> None:
        """Record one row now (closes the current interval)."""
        tm = self.twin.traffic
        if tm.now <= (self.time[-1] if self.time else 0.0):
            return
        rows = tm.take_interval()
        for key, arr in rows.items():
            self.link[key].append(arr)
        c = tm.counts()
        self.network["on_network"].append(c["on_network"])
        self.network["waiting"].append(c["waiting"])
        self.network["arrived"].append(c["arrived"])
        self.network["departed"].append(tm.n_vehicles - c["pending"] - c["cancelled"])
        self.network["stranded"].append(c["no_route"] + c["no_path"])
        self._sample_control()
        self.time.append(tm.now)
        for comp in getattr(self.twin, "components", {}).values():
            comp.sample(tm.now)

    def _sample_control(self) -> None:
        """Closed links and each link's capacity as a share of the network's (lanes lost,
        capacity cut), as the active link changes leave them now.
        """
        tm = self.twin.traffic
        closed = (tm.links.is_open == 0).astype(np.int8)
        share = np.ones(closed.shape, np.float32)
        control = getattr(self.twin, "link_control", None)
        changed = np.asarray(sorted(control.by_link), np.int64) if control is not None else np.zeros(0, np.int64)
        if control is not None and changed.size:
            cap = control.effective(changed)["capacity_vph"]
            base = self.twin.city.network.capacity_vph[changed].astype(np.float64)
            share[changed] = np.where(base > 0, cap / np.where(base > 0, base, 1.0), 1.0)
        self.control["closed"].append(closed)
        self.control["capacity_share"].append(share)
