"""Operator controls: each checked in full before it reaches the twin, then applied.

A control is a JSON object with an ``action`` and its fields:

=================  ================================================================
``pause``           stop the clock (the page stays live)
``resume``          start it again
``speed``           ``value``: simulated seconds per real second, 0.1 - 3600
``incident``        ``type``, and ``node`` (index) or ``x``, ``y`` (map metres, the
                    nearest node); optional ``severity`` 1-5, ``notes``
``close_road``      ``link`` (index): closed from now until reopened
``reopen_road``     ``link``: lifts the operator's closure
``station``         ``station`` (name), ``in_service`` true|false
``evacuate``        ``zones`` (names or indices, at most 200); optional ``compliance``
                    0-1, ``delay_min`` 0-600 (needs a population in the scenario)
``fork``            ``hours`` 0.25-24; optional ``close_links`` (the what-if: those
                    links closed), compared with "no action"
=================  ================================================================

:func:`check_control` turns the parsed body into a checked control or raises
:class:`ControlError` (a 4xx status and the reason); :func:`apply_control` applies
one in the thread that runs the twin and returns a one-line description for the
log.  Nothing here unpickles or evaluates anything from a request.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from basics.errors import InputError, TwinError

__all__ = ["ControlError", "check_control", "apply_control", "ACTIONS", "MAX_BODY_BYTES"]

#: largest control body read
MAX_BODY_BYTES = 16_384
#: the actions a control may name
ACTIONS = (
    "pause",
    "resume",
    "speed",
    "incident",
    "close_road",
    "reopen_road",
    "station",
    "evacuate",
    "fork",
)
_FIELDS: dict[str, set[str]] = {
    "pause": set(),
    "resume": set(),
    "speed": {"value"},
    "incident": {"type", "node", "x", "y", "severity", "notes"},
    "close_road": {"link"},
    "reopen_road": {"link"},
    "station": {"station", "in_service"},
    "evacuate": {"zones", "compliance", "delay_min"},
    "fork": {"hours", "close_links"},
}
MAX_NOTES = 1000
MAX_ZONES = 200
MAX_FORK_LINKS = 100


class ControlError(TwinError):
    """A control refused: ``status`` (400, 403, 409, 413, 422, 503) and the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _number(body: dict, key: str, lo: float, hi: float, *, integer: bool = False) -> float:
    v = body.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
        kind = "a whole number" if integer else "a number"
        raise ControlError(422, f"{body['action']}: {key} must be {kind} {lo:g}-{hi:g}")
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ControlError(422, f"{body['action']}: {key} must be {lo:g}-{hi:g}, got {v!r}"[:200])
    return v


def _text(body: dict, key: str, limit: int) -> str:
    v = body.get(key)
    if not isinstance(v, str) or not v.strip():
        raise ControlError(422, f"{body['action']}: {key} must be text")
    if len(v) > limit:
        raise ControlError(422, f"{body['action']}: {key} may have at most {limit} characters")
    return v.strip()


def _check_incident(body: dict, out: dict, *, n_links: int, n_nodes: int) -> None:
    out["type"] = _text(body, "type", 64)
    if "node" in body:
        out["node"] = int(_number(body, "node", 0, n_nodes - 1, integer=True))
    elif "x" in body and "y" in body:
        out["x"] = float(_number(body, "x", -1e9, 1e9))
        out["y"] = float(_number(body, "y", -1e9, 1e9))
    else:
        raise ControlError(422, "incident: give node, or x and y (a point on the map)")
    if body.get("severity") is not None:
        out["severity"] = int(_number(body, "severity", 1, 5, integer=True))
    notes = body.get("notes", "")
    if not isinstance(notes, str) or len(notes) > MAX_NOTES:
        raise ControlError(422, f"incident: notes must be text of at most {MAX_NOTES} characters")
    out["notes"] = notes


def _check_speed(body: dict, out: dict, *, n_links: int, n_nodes: int) -> None:
    out["value"] = float(_number(body, "value", 0.1, 3600))


def _check_link(body: dict, out: dict, *, n_links: int, n_nodes: int) -> None:
    out["link"] = int(_number(body, "link", 0, n_links - 1, integer=True))


def _check_station(body: dict, out: dict, *, n_links: int, n_nodes: int) -> None:
    out["station"] = _text(body, "station", 200)
    if not isinstance(body.get("in_service"), bool):
        raise ControlError(422, "station: in_service must be true or false")
    out["in_service"] = body["in_service"]


def _check_evacuate(body: dict, out: dict, *, n_links: int, n_nodes: int) -> None:
    zones = body.get("zones")
    if (
        not isinstance(zones, list)
        or not 0 < len(zones) <= MAX_ZONES
        or not all(isinstance(z, (str, int)) and not isinstance(z, bool) for z in zones)
    ):
        raise ControlError(422, f"evacuate: zones must be a list of 1-{MAX_ZONES} zone names or indices")
    out["zones"] = [z[:100] if isinstance(z, str) else z for z in zones]
    out["compliance"] = float(_number(body, "compliance", 0, 1)) if "compliance" in body else 1.0
    out["delay_min"] = float(_number(body, "delay_min", 0, 600)) if "delay_min" in body else 0.0


def _check_fork(body: dict, out: dict, *, n_links: int, n_nodes: int) -> None:
    out["hours"] = float(_number(body, "hours", 0.25, 24))
    links = body.get("close_links", [])
    if not isinstance(links, list) or len(links) > MAX_FORK_LINKS:
        raise ControlError(422, f"fork: close_links must be a list of at most {MAX_FORK_LINKS} link indices")
    for v in links:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n_links:
            raise ControlError(422, f"fork: close_links holds {str(v)[:20]!r}, not a link index 0-{n_links - 1}")
    out["close_links"] = sorted(set(links))


_CHECKERS = {
    "speed": _check_speed,
    "incident": _check_incident,
    "close_road": _check_link,
    "reopen_road": _check_link,
    "station": _check_station,
    "evacuate": _check_evacuate,
    "fork": _check_fork,
}


def check_control(body: Any, *, n_links: int, n_nodes: int) -> dict[str, Any]:
    """The checked control for a parsed request body.

    Parameters
    ----------
    body
        The parsed JSON.
    n_links, n_nodes
        The network's size (indices are checked against it).

    Raises
    ------
    ControlError
        Not an object, an unknown action or field, or a field of the wrong type or
        out of range; the reason names it.
    """
    if not isinstance(body, dict):
        raise ControlError(400, 'a control is a JSON object such as {"action": "pause"}')
    action = body.get("action")
    if action not in ACTIONS:
        raise ControlError(422, f"unknown action {str(action)[:40]!r}; known: {', '.join(ACTIONS)}")
    extra = set(body) - _FIELDS[action] - {"action"}
    if extra:
        raise ControlError(422, f"{action}: unknown field(s) {', '.join(sorted(str(k)[:40] for k in extra)[:10])}")
    out: dict[str, Any] = {"action": action}
    checker = _CHECKERS.get(action)
    if checker is not None:
        checker(body, out, n_links=n_links, n_nodes=n_nodes)
    return out


def nearest_node(twin: Any, x: float, y: float) -> int:
    """The node nearest to a map point (projected metres)."""
    net = twin.city.network
    return int(np.argmin((net.x - x) ** 2 + (net.y - y) ** 2))


def apply_control(twin: Any, ctl: dict[str, Any], *, closures: dict[int, int], who: str) -> str:
    """Apply a checked twin control (incident, road, station, evacuation).

    Parameters
    ----------
    twin
        The twin (call from the thread that runs it).
    ctl
        From :func:`check_control`.
    closures
        The operator's open closures, link -> LinkControl handle (updated).
    who
        The token's name (the closure's source names it).

    Returns
    -------
    str
        What was done, for the log.

    Raises
    ------
    ControlError
        409 when the twin cannot do it (no emergency services, an unknown station or
        incident type, a road not closed by an operator); the twin is unchanged.
    """
    action = ctl["action"]
    net = twin.city.network
    comp = twin.components.get("emergency")
    try:
        if action == "incident":
            if comp is None:
                raise ControlError(409, "incident: this scenario has no emergency services (run with --drill)")
            node = ctl["node"] if "node" in ctl else nearest_node(twin, ctl["x"], ctl["y"])
            i = comp.inject(ctl["type"], int(net.node_osmid[node]), severity=ctl.get("severity"), notes=ctl["notes"])
            return f"incident {i} {ctl['type']} at node {int(net.node_osmid[node])}"
        if action == "close_road":
            link = ctl["link"]
            if link in closures:
                raise ControlError(409, f"close_road: link {link} is already closed by an operator")
            closures[link] = twin.link_control.apply([link], source=f"operator {who}: close", closed=True)
            return f"closed link {link} {net.link_name[link] or ''}".rstrip()
        if action == "reopen_road":
            link = ctl["link"]
            if link not in closures:
                raise ControlError(409, f"reopen_road: link {link} has no operator closure")
            twin.link_control.revert(closures.pop(link))
            return f"reopened link {link} {net.link_name[link] or ''}".rstrip()
        if action == "station":
            if comp is None:
                raise ControlError(409, "station: this scenario has no emergency services")
            comp.set_station_in_service(ctl["station"], ctl["in_service"])
            return f"{ctl['station']} {'back in' if ctl['in_service'] else 'out of'} service"
        if action == "evacuate":
            return _evacuate(twin, ctl)
    except InputError as exc:
        raise ControlError(409, f"{action}: {exc}"[:500]) from None
    raise ControlError(422, f"{action} is not a twin control")


def _evacuate(twin: Any, ctl: dict[str, Any]) -> str:
    """An evacuation order from now, through the interventions timeline."""
    if "population" not in twin.components:
        raise ControlError(409, "evacuate: an evacuation acts on people: this scenario has no population section")
    from pydantic import TypeAdapter, ValidationError

    from scenarios.interventions import InterventionSpec
    from twin.interventions import ensure

    raw = {
        "kind": "evacuation",
        "name": "operator evacuation",
        "zones": ctl["zones"],
        "compliance": ctl["compliance"],
        "delay_mean": ctl["delay_min"] * 60.0,
        "at": 0,
    }
    try:
        spec: Any = TypeAdapter(InterventionSpec).validate_python(raw)
    except ValidationError as exc:
        raise ControlError(422, f"evacuate: {exc.errors()[0].get('msg', 'invalid')}"[:300]) from None
    ensure(twin).add([spec], label="operator")
    return f"evacuation ordered for {len(ctl['zones'])} zone(s)"
