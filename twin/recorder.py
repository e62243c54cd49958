"""KPI recording: a SimPy process that samples the traffic model every interval."""

from __future__ import annotations

import numpy as np

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
        self.time: list[float] = []
        self.link: dict[str, list[np.ndarray]] = {"inflow": [], "outflow": [], "vehicles": [], "speed": []}
        self.network: dict[str, list[float]] = {
            "on_network": [],
            "waiting": [],
            "arrived": [],
            "departed": [],
        }

    def process(self):
        env = self.twin.env
        while True:
            yield env.timeout(self.interval_s)
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
        self.network["departed"].append(tm.n_vehicles - c["pending"])
        self.time.append(tm.now)
