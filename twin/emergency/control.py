"""What interventions and live injects can do to the emergency services while the twin runs.

Held by :class:`~twin.emergency.component.EmergencyComponent` (``comp.control``), which
exposes each method; every method acts at the
clock's current time and is recorded in the after-action log.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from basics.errors import InputError
from basics.numeric import EPS as _EPS
from scenarios import parse_time_point
from scenarios.emergency import MAX_UNITS_PER_STATION, _location
from twin.emergency.incidents import locate
from twin.emergency.resources import AVAILABLE, OUT_OF_SERVICE, RETURNING, Station

if TYPE_CHECKING:
    from twin.emergency.component import EmergencyComponent

__all__ = ["ControlDesk"]


def _short(value) -> str:
    """A value quoted for a message, at most 60 characters (never a huge repr)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        text = repr(value) if not isinstance(value, int) or abs(value) < 10**60 else "a huge number"
    else:
        text = f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


class ControlDesk:
    """Station changes, unit moves and injects (the interventions module's handles).

    Parameters
    ----------
    comp : EmergencyComponent
        The emergency services it acts on.
    """

    def __init__(self, comp: EmergencyComponent) -> None:
        self.comp = comp

    def _station(self, name: str) -> tuple[int, Station]:
        if not isinstance(name, str):
            raise InputError(f"a station is named by text, got {_short(name)}")
        for k, s in enumerate(self.comp.fleet.stations):
            if s.name == name and not s.removed:
                return k, s
        from twin.places import close_matches

        raise InputError(
            f"no station named {_short(name)}"
            + close_matches(name, [s.name for s in self.comp.fleet.stations if not s.removed])
        )

    def set_station_in_service(self, name: str, in_service: bool) -> None:
        """Take a station out of service, or put it back.

        Out of service, its units are not dispatched: those at the station stand down
        at once, those on a job finish it and then stay at the station.  Back in
        service, its units at the station become available.

        Raises
        ------
        InputError
            No station of that name.
        """
        k, st = self._station(name)
        self.comp.fleet.set_in_service(k, in_service)
        self.comp.log.add(
            self.comp.now, "station_in_service" if in_service else "station_out_of_service", node=st.node, detail=name
        )
        self.comp.kick()

    def add_station(self, name: str, kind: str, node, units: dict[str, int], *, mutual_aid: bool = False) -> list[int]:
        """Open a new station with units, available at once; returns the new unit ids.

        Parameters
        ----------
        name
            A name no active station has.
        kind
            ``fire``, ``ems``, ``police`` or ``tow``.
        node
            Node id, ``[lon, lat]`` or a named place.
        units
            Unit kind -> count; every kind must be needed by some incident type.
        mutual_aid
            Units sent only when no own unit of the kind is free.

        Raises
        ------
        InputError
            A taken name, an unknown kind, a location not in the city, an unneeded unit kind.
        """
        where = f"add_station({name!r})"
        if any(s.name == name and not s.removed for s in self.comp.fleet.stations):
            raise InputError(f"{where}: a station named {name!r} already exists")
        if kind not in ("fire", "ems", "police", "tow"):
            raise InputError(f"{where}: kind must be fire, ems, police or tow, got {kind!r}")
        loc = locate(self.comp.twin.city, node, where=f"{where}.node")
        needed = self.comp.spec.unit_kinds_needed
        for k, n in units.items():
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= MAX_UNITS_PER_STATION:
                raise InputError(
                    f"{where}: units[{_short(k)}] must be a whole number 0-{MAX_UNITS_PER_STATION:,}, got {_short(n)}"
                )
            if n > 0 and k not in needed:
                raise InputError(
                    f"{where}: unit kind {k!r} is not needed by any incident type "
                    f"(kinds needed: {', '.join(sorted(needed))})"
                )
        station = Station(name=name, kind=kind, node=loc.node, mutual_aid=mutual_aid)
        new = self.comp.fleet.add_station(station, units)
        self.comp.log.add(
            self.comp.now,
            "station_added",
            node=loc.node,
            detail=f"{name}: " + ", ".join(f"{n} {k}" for k, n in units.items()),
        )
        self.comp.kick()
        return new

    def remove_station(self, name: str) -> None:
        """Close a station for good: units at it leave service now, the others after their job."""
        k, st = self._station(name)
        for u in self.comp.fleet.remove_station(k):
            self.comp.set_next(("u", u.id), math.inf)
        self.comp.log.add(self.comp.now, "station_removed", node=st.node, detail=name)

    def move_units(self, from_station: str, to_station: str, kind: str, n: int) -> list[int]:
        """Move up to ``n`` free ``kind`` units between stations (they drive there); returns their ids."""
        a, _ = self._station(from_station)
        b, dst = self._station(to_station)
        moved: list[int] = []
        for u in self.comp.fleet.units:
            if len(moved) >= n:
                break
            if (
                u.station == a
                and u.kind == kind
                and u.state in (AVAILABLE, OUT_OF_SERVICE, RETURNING)
                and u.incident < 0
            ):
                self.comp.fleet.rehome(u, b)
                moved.append(u.id)
                self.comp.log.add(self.comp.now, "relocating", -1, u.id, u.node, detail=f"to {dst.name}")
                self.comp.send_home(u)
        self.comp.kick()
        return moved

    def inject(self, type: str, location, *, severity: int | None = None, notes: str = "", at=None) -> int | None:
        """Add an incident while the twin runs (a drill inject).

        Parameters
        ----------
        type
            An incident type.
        location
            Node id, ``[lon, lat]`` or a named place.
        severity
            1-5, or ``None`` to draw it.
        notes
            Free text for the log.
        at
            When it occurs (time point as in the drill timeline); ``None``: now.

        Returns
        -------
        int or None
            The new incident's id, or ``None`` when it is scheduled for later.

        Raises
        ------
        InputError
            Unknown type, bad severity, notes that are not text, unknown location, a time
            that cannot be read, in the past or after the end of the scenario; the twin is
            left unchanged.
        """
        if not isinstance(type, str):
            raise InputError(
                f"inject: type must be the name of an incident type, got {_short(type)} "
                f"(known: {', '.join(sorted(self.comp.types))})"
            )
        where = f"inject {_short(type)}"
        if type not in self.comp.types:
            raise InputError(f"{where}: not an incident type (known: {', '.join(sorted(self.comp.types))})")
        if severity is not None and (
            isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5
        ):
            raise InputError(f"{where}: severity must be a whole number 1-5, got {_short(severity)}")
        if not isinstance(notes, str):
            raise InputError(f"{where}: notes must be text, got {_short(notes)}")
        try:
            location = _location(location)
        except ValueError as exc:
            raise InputError(f"{where}.location: {exc}") from None
        loc = locate(self.comp.twin.city, location, where=f"{where}.location")
        if at is None:
            t = self.comp.now
        elif isinstance(at, bool) or not isinstance(at, (int, float, str)):
            raise InputError(
                f"{where}: 'at' must be a clock time \"HH:MM[:SS]\" or a time after the start, got {_short(at)}"
            )
        else:
            try:
                t = parse_time_point(at, start_s=self.comp.twin.start_s)
            except ValueError as exc:
                raise InputError(f"{where}: 'at': {exc}") from None
        if t < self.comp.now - _EPS:
            raise InputError(f"{where}: 'at' is {t:.0f} s, before the clock ({self.comp.now:.0f} s)")
        if t > self.comp.twin.duration_s + _EPS:
            raise InputError(
                f"{where}: 'at' is {t:.0f} s after the start, after the end of the scenario "
                f"({self.comp.twin.duration_s:.0f} s)"
            )
        if t <= self.comp.now + _EPS:
            return self.comp.new_incident(type, loc, severity=severity, source="inject", notes=notes).id
        self.comp.add_to_script(
            {"t": t, "type": type, "loc": loc, "severity": severity, "notes": notes, "source": "inject"}
        )
        return None
