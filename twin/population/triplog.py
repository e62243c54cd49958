"""The agents' trip diary: one row per person trip, in growable columns."""

from __future__ import annotations

import numpy as np

__all__ = ["TripLog", "TRIP_ACTIVE", "TRIP_DONE", "TRIP_CANCELLED"]

TRIP_ACTIVE, TRIP_DONE, TRIP_CANCELLED = 0, 1, 2

_COLUMNS = {
    "person": np.int32,
    "leg": np.int8,
    "purpose": np.int8,
    "mode": np.int8,
    "orig": np.int32,
    "dest": np.int32,
    "depart": np.float64,
    "arrive": np.float64,
    "gc": np.float32,
    "paid": np.float32,
    "vid": np.int64,
    "status": np.int8,
}


class TripLog:
    """Rows appended in batches; capacity grows geometrically (amortised O(1) per row)."""

    def __init__(self) -> None:
        self.n = 0
        self._cols = {k: np.zeros(0, t) for k, t in _COLUMNS.items()}

    def append(self, **cols: np.ndarray) -> np.ndarray:
        """Append rows (every column given, same length); returns their row indices."""
        m = int(next(iter(cols.values())).shape[0])
        need = self.n + m
        cap = self._cols["person"].shape[0]
        if need > cap:
            new_cap = max(need, 2 * cap, 1024)
            for k, a in self._cols.items():
                b = np.zeros(new_cap, a.dtype)
                b[: self.n] = a[: self.n]
                self._cols[k] = b
        for k in _COLUMNS:
            self._cols[k][self.n : need] = cols[k]
        rows = np.arange(self.n, need, dtype=np.int64)
        self.n = need
        return rows

    def __getitem__(self, key: str) -> np.ndarray:
        """The used part of a column (a view: writes go to the log)."""
        return self._cols[key][: self.n]

    def __getstate__(self) -> dict:
        return {"n": self.n, "_cols": {k: a[: self.n].copy() for k, a in self._cols.items()}}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
