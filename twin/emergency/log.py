"""The after-action log: every emergency event with its time, incident, unit and location."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from basics.clock import format_clock

__all__ = ["EventLog", "EVENTS", "after_action_rows", "write_after_action"]

#: event names, in the order they usually happen
EVENTS = (
    "occurred",
    "reported",
    "queued",
    "dispatched",
    "en_route",
    "on_scene",
    "work_done",
    "scene_closed",
    "stood_down",
    "transport",
    "at_hospital",
    "handover_done",
    "road_cleared",
    "cleared",
    "returning",
    "at_station",
    "rerouted",
    "stranded",
    "station_out_of_service",
    "station_in_service",
    "station_added",
    "station_removed",
    "relocating",
    "inject_rejected",
    "link_change",
)


@dataclass
class EventLog:
    """Rows ``(time_s, event, incident, unit, node, detail)`` in order (-1: none)."""

    rows: list[tuple[float, str, int, int, int, str]] = field(default_factory=list)

    def add(self, t: float, event: str, incident: int = -1, unit: int = -1, node: int = -1, detail: str = "") -> None:
        """Append one row to the after-action log (-1: no incident, unit or node)."""
        self.rows.append((float(t), event, int(incident), int(unit), int(node), detail))

    def __len__(self) -> int:
        return len(self.rows)

    def events(self, *, incident: int | None = None, unit: int | None = None) -> list[tuple]:
        """Rows for one incident and/or unit."""
        return [r for r in self.rows if (incident is None or r[2] == incident) and (unit is None or r[3] == unit)]


COLUMNS = (
    "time_s",
    "clock",
    "event",
    "incident",
    "incident_type",
    "severity",
    "unit",
    "unit_kind",
    "station",
    "node",
    "x",
    "y",
    "lon",
    "lat",
    "detail",
)


def after_action_rows(comp, rows: list[tuple] | None = None) -> list[dict]:
    """The log (or some of its ``rows``) as dicts with incident, unit and place spelled out
    (see :data:`COLUMNS`).
    """
    net = comp.twin.city.network
    start = comp.twin.start_s
    out = []
    for t, ev, i, u, node, detail in comp.log.rows if rows is None else rows:
        inc = comp.incidents[i] if i >= 0 else None
        unit = comp.units[u] if u >= 0 else None
        out.append(
            {
                "time_s": round(t, 3),
                "clock": format_clock(start + t, with_seconds=True),
                "event": ev,
                "incident": i if i >= 0 else "",
                "incident_type": inc.type if inc else "",
                "severity": inc.severity if inc else "",
                "unit": comp.unit_name(u) if unit else "",
                "unit_kind": unit.kind if unit else "",
                "station": comp.stations[unit.station].name if unit else "",
                "node": int(net.node_osmid[node]) if node >= 0 else "",
                "x": round(float(net.x[node]), 1) if node >= 0 else "",
                "y": round(float(net.y[node]), 1) if node >= 0 else "",
                "lon": round(float(net.lon[node]), 6) if node >= 0 and np.isfinite(net.lon[node]) else "",
                "lat": round(float(net.lat[node]), 6) if node >= 0 and np.isfinite(net.lat[node]) else "",
                "detail": detail,
            }
        )
    return out


def write_after_action(comp, path: str | Path) -> Path:
    """Write the after-action log as CSV (or JSON lines for ``.jsonl``), atomically."""
    from basics.atomic import write_text

    path = Path(path)
    rows = after_action_rows(comp)
    if path.suffix.lower() == ".jsonl":
        return write_text(path, "".join(json.dumps(row) + "\n" for row in rows))
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=COLUMNS)
    w.writeheader()
    w.writerows(rows)
    return write_text(path, buf.getvalue())
