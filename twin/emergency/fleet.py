"""The unit fleet: stations and units as records, with the index that answers "who is free".

:class:`Fleet` owns the emergency service's :class:`~twin.emergency.resources.Station`
and :class:`~twin.emergency.resources.Unit` records and every change to a unit's
state or home station, so that a small set of numpy arrays mirroring them (state,
kind and station of each unit; service state, node and mutual-aid flag of each
station) always agrees with the records.  The dispatch centre, the control desk
and the incident life cycle read and change units only through it.

The arrays are derived: :meth:`Fleet.rebuild_index` makes them from the records
(the component calls it when it starts, so a twin restored from a snapshot
rebuilds them too).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from twin.emergency.resources import (
    AVAILABLE,
    DISPATCHED,
    ENROUTE,
    OUT_OF_SERVICE,
    REMOVED,
    RETURNING,
    TRANSPORT,
    Station,
    Unit,
)

__all__ = ["Fleet"]

#: unit states in which a unit drives a route
_MOVING = (DISPATCHED, ENROUTE, TRANSPORT, RETURNING)
_IS_MOVING = np.zeros(16, bool)
_IS_MOVING[list(_MOVING)] = True
#: unit states in which a unit may be sent (its station in service)
_IS_FREE = np.zeros(16, bool)
_IS_FREE[[AVAILABLE, RETURNING]] = True


class Fleet:
    """Stations and their units, with a fast index of unit states and free units by kind.

    Parameters
    ----------
    stations : list of Station
        The stations, in id order (a station's id is its position).
    units : list of Unit
        The units, in id order (``units[u].id == u``).
    kinds : list of str
        The unit kinds the scenario needs, sorted; every unit's kind is one of them.
    """

    def __init__(self, stations: list[Station], units: list[Unit], kinds: list[str]) -> None:
        #: the station records (never removed from the list: a closed station is marked ``removed``)
        self.stations = stations
        #: the unit records (never removed: a retired unit is ``done``)
        self.units = units
        #: unit kinds, sorted; the position of a kind is its code in the index
        self.kinds = kinds
        self.rebuild_index()
        #: display names of the units, by id
        self.names = self._name_units(range(len(units)))

    # ------------------------------------------------------------ the index
    def rebuild_index(self) -> None:
        """Make the arrays that mirror the unit and station records from the records."""
        self._kind_code = {k: i for i, k in enumerate(self.kinds)}
        self._state = np.asarray([u.state for u in self.units], np.int8)
        self._kind = np.asarray([self._kind_code[u.kind] for u in self.units], np.int64)
        self._kind_mask = [self._kind == c for c in range(len(self.kinds))]
        self._station = np.asarray([u.station for u in self.units], np.int64)
        self._st_ok = np.asarray([s.in_service and not s.removed for s in self.stations], bool)
        self._st_node = np.asarray([s.node for s in self.stations], np.int64)
        self._st_aid = np.asarray([s.mutual_aid for s in self.stations], bool)
        self._any_aid = bool(self._st_aid.any())
        self._free: np.ndarray | None = None  # see free_mask

    def _stations_changed(self) -> None:
        """Forget the free-unit mask (a station's service state or a unit's station changed)."""
        self._free = None

    def check_index(self) -> None:
        """Raise ``RuntimeError`` where the index disagrees with the records."""
        if self._free is not None and not np.array_equal(
            self._free, ((self._state == AVAILABLE) | (self._state == RETURNING)) & self._st_ok[self._station]
        ):
            raise RuntimeError("the free-unit index disagrees with the unit and station records")
        for s_, st in enumerate(self.stations):
            if self._st_ok[s_] != (st.in_service and not st.removed):
                raise RuntimeError(f"station {st.name}: the index disagrees with its record")
        for u in self.units:
            if (
                self._state[u.id] != u.state
                or self._kind[u.id] != self._kind_code[u.kind]
                or self._station[u.id] != u.station
            ):
                raise RuntimeError(f"unit {u.id}: the index disagrees with its record")

    # ------------------------------------------------------------ unit states
    def set_state(self, unit: Unit, state: int) -> None:
        """Change a unit's state (record and index).

        Parameters
        ----------
        unit : Unit
            One of the fleet's units.
        state : int
            One of the unit states of :mod:`twin.emergency.resources`.
        """
        unit.state = state
        self._state[unit.id] = state
        if self._free is not None:
            self._free[unit.id] = _IS_FREE[state] and self._st_ok[unit.station]

    def free_mask(self) -> np.ndarray:
        """Units that may be sent now: at their station or driving home, station in service (a copy)."""
        if self._free is None:  # kept up to date by set_state
            self._free = _IS_FREE[self._state] & self._st_ok[self._station]
        return self._free.copy()

    def count_by_kind(self, mask: np.ndarray) -> np.ndarray:
        """How many of the units in ``mask`` there are of each kind (in :attr:`kinds` order)."""
        return np.bincount(self._kind[mask], minlength=len(self.kinds))

    def free_by_kind(self, mask: np.ndarray) -> dict[str, int]:
        """How many of the units in ``mask`` there are of each kind, by kind name."""
        counts = self.count_by_kind(mask)
        return {k: int(counts[c]) for k, c in self._kind_code.items()}

    def of_kind(self, kind: str, mask: np.ndarray) -> np.ndarray:
        """Ids of the units of ``kind`` in ``mask`` (ascending)."""
        return (mask & self._kind_mask[self._kind_code[kind]]).nonzero()[0]

    def returning(self, ids: np.ndarray) -> np.ndarray:
        """Positions in ``ids`` of the units driving home."""
        return (self._state[ids] == RETURNING).nonzero()[0]

    def any_moving(self) -> bool:
        """Whether some unit drives a route (dispatched, en route, transporting, returning)."""
        return bool(_IS_MOVING[self._state].any())

    def moving(self) -> np.ndarray:
        """Ids of the units that drive a route, ascending."""
        return np.flatnonzero(_IS_MOVING[self._state])

    # ------------------------------------------------------------ stations
    def stations_of(self, ids: np.ndarray) -> np.ndarray:
        """Home station of each unit in ``ids``."""
        return self._station[ids]

    def station_nodes(self, stations: np.ndarray) -> np.ndarray:
        """Node of each station in ``stations`` (a new array)."""
        return self._st_node[stations]

    def mutual_aid(self, stations: np.ndarray) -> np.ndarray:
        """Whether each station in ``stations`` sends mutual aid only."""
        return self._st_aid[stations]

    @property
    def any_mutual_aid(self) -> bool:
        """Whether any station is a mutual-aid station."""
        return self._any_aid

    def set_in_service(self, k: int, in_service: bool) -> None:
        """Put station ``k`` in or out of service; its units at the station follow.

        Out of service, its available units become out of service; back in service,
        its out-of-service units become available (units on a job are left alone).
        """
        st = self.stations[k]
        st.in_service = bool(in_service)
        self._st_ok[k] = st.in_service
        self._stations_changed()
        for u in self.units:
            if u.station != k:
                continue
            if not in_service and u.state == AVAILABLE:
                self.set_state(u, OUT_OF_SERVICE)
            elif in_service and u.state == OUT_OF_SERVICE:
                self.set_state(u, AVAILABLE)

    def remove_station(self, k: int) -> list[Unit]:
        """Close station ``k`` for good; returns its units retired now (those at the station).

        Its units on a job stay in service until they come back.
        """
        st = self.stations[k]
        st.removed = True
        st.in_service = False
        self._st_ok[k] = False
        self._stations_changed()
        retired = []
        for u in self.units:
            if u.station == k and u.state in (AVAILABLE, OUT_OF_SERVICE):
                self.set_state(u, REMOVED)
                u.done = True
                retired.append(u)
        return retired

    def add_station(self, station: Station, units: dict[str, int]) -> list[int]:
        """Open ``station`` with ``units`` (kind -> count) standing at it; returns the new unit ids."""
        s = len(self.stations)
        self.stations.append(station)
        new = []
        for k, n in units.items():
            for _ in range(int(n)):
                u = Unit(id=len(self.units), kind=k, station=s, node=station.node)
                self.units.append(u)
                new.append(u.id)
        self.rebuild_index()
        self.names += self._name_units(new)
        return new

    def rehome(self, unit: Unit, k: int) -> None:
        """Make station ``k`` the unit's home (it still has to drive there)."""
        unit.station = k
        self._station[unit.id] = k
        self._stations_changed()

    # ------------------------------------------------------------ names
    def _name_units(self, ids: Iterable[int]) -> list[str]:
        out = []
        for u in ids:
            unit = self.units[u]
            k = sum(1 for v in self.units[:u] if v.station == unit.station and v.kind == unit.kind) + 1
            out.append(f"{unit.kind} {k} ({self.stations[unit.station].name})")
        return out

    def name(self, u: int) -> str:
        """A unit's display name, e.g. ``ambulance 2 (Central)``."""
        return self.names[u]
