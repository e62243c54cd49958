"""Where persons with a trip are now: one pass over the travellers.

The population component keeps, for each person with a trip (decided, maybe
not started), its mode, vehicle, departure and destination.  :func:`trip_positions`
says for each of them, at time ``now``, when the trip arrives (the traffic
model's arrival for drivers, the known arrival otherwise), whether they are
still where they set off from, under way, or already arrived, and the node
whose zone they count in (for a driver on a link, the link's end).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from basics.errors import InputError
from kernels._checks import check_array, check_indices
from kernels._jit import Float, njit

__all__ = [
    "PersonTrips",
    "VehicleView",
    "Positions",
    "trip_positions",
    "STATE_HOME",
    "STATE_ACTIVITY",
    "STATE_TRAVELLING",
]

STATE_HOME, STATE_ACTIVITY, STATE_TRAVELLING = 0, 1, 2
_CAR = 0
_HOME_PURPOSE = 0


class PersonTrips(NamedTuple):
    """Each person's trip, indexed by person id (one entry per person).

    ``mode`` (0: car), ``vid`` (vehicle id of a car trip), ``dep`` (departure, s),
    ``arr_known`` (arrival when known in advance: no car; NaN otherwise), ``dest``
    (destination node), ``purpose`` (0: home), and before the trip ``place`` (0 home,
    1 activity) and ``node`` (where they rest).  Integer fields of any integer dtype,
    ``dep`` and ``arr_known`` float64.
    """

    mode: np.ndarray
    vid: np.ndarray
    dep: np.ndarray
    arr_known: np.ndarray
    dest: np.ndarray
    purpose: np.ndarray
    place: np.ndarray
    node: np.ndarray


class VehicleView(NamedTuple):
    """What the traffic model says of the vehicles: ``arrive`` (float64, NaN until arrived),
    ``link`` (>= 0 on a link; per vehicle) and ``link_dst`` (downstream node of each link).
    """

    arrive: np.ndarray
    link: np.ndarray
    link_dst: np.ndarray


class Positions(NamedTuple):
    """Output per asked person: ``arrive`` (float64, NaN while under way), ``state`` (int8:
    0 at home, 1 at an activity, 2 travelling), ``node`` (int32: where they count).
    """

    arrive: np.ndarray
    state: np.ndarray
    node: np.ndarray


@njit(cache=True)
def _trip_positions(persons: np.ndarray, trips: PersonTrips, veh: VehicleView, now: Float, out: Positions) -> Positions:
    """The kernel of :func:`trip_positions` (arguments as there, trusted)."""
    mode, vid, dep, arr_known = trips.mode, trips.vid, trips.dep, trips.arr_known
    dest, purpose, place, node = trips.dest, trips.purpose, trips.place, trips.node
    veh_arrive, veh_link, link_dst = veh.arrive, veh.link, veh.link_dst
    arrive_out, state_out, node_out = out.arrive, out.state, out.node
    for j in range(persons.shape[0]):
        p = persons[j]
        car = mode[p] == _CAR
        v = vid[p]
        a = veh_arrive[v] if car else arr_known[p]
        arrive_out[j] = a
        if a <= now:  # NaN compares false
            state_out[j] = STATE_HOME if purpose[p] == _HOME_PURPOSE else STATE_ACTIVITY
            node_out[j] = dest[p]
        elif dep[p] <= now:
            state_out[j] = STATE_TRAVELLING
            node_out[j] = node[p]
            if car:
                lk = veh_link[v]
                if lk >= 0:
                    node_out[j] = link_dst[lk]
        else:
            state_out[j] = place[p]
            node_out[j] = node[p]
    return out


def trip_positions(persons: np.ndarray, trips: PersonTrips, veh: VehicleView, now: float, out: Positions) -> Positions:
    """Arrival time, state and counting node of each person in ``persons``, into ``out``.

    Parameters
    ----------
    persons : integer array (m,)
        Persons with a trip (ids into ``trips``).
    trips : PersonTrips
        Every person's trip.
    veh : VehicleView
        The traffic model's vehicles and links.
    now : float
        The time asked about.
    out : Positions
        Output arrays of length ``m``.

    Returns
    -------
    Positions
        ``out``.

    Raises
    ------
    basics.errors.InputError
        A field of the wrong dtype or length, a person id outside ``trips``, or a car trip
        whose vehicle id is outside ``veh`` (O(m) checks; link ids on the vehicles are the
        traffic model's to keep).
    """
    if not isinstance(trips, PersonTrips) or not isinstance(veh, VehicleView) or not isinstance(out, Positions):
        raise InputError("trips, veh and out must be a PersonTrips, a VehicleView and a Positions")
    n_p = trips.mode.shape[0] if isinstance(trips.mode, np.ndarray) else 0
    for f in PersonTrips._fields:
        a = getattr(trips, f)
        if f in ("dep", "arr_known"):
            check_array(f"trips.{f}", a, np.float64, length=n_p)
        elif not isinstance(a, np.ndarray) or a.ndim != 1 or a.dtype.kind not in "iu" or a.shape[0] != n_p:
            raise InputError(f"trips.{f} must be a 1-D integer array of one entry per person ({n_p})")
    check_array("veh.arrive", veh.arrive, np.float64)
    n_v = veh.arrive.shape[0]
    for f in ("link", "link_dst"):
        a = getattr(veh, f)
        if not isinstance(a, np.ndarray) or a.ndim != 1 or a.dtype.kind not in "iu":
            raise InputError(f"veh.{f} must be a 1-D integer array")
    if veh.link.shape[0] != n_v:
        raise InputError(f"veh.link must have one entry per vehicle ({n_v}), got {veh.link.shape[0]}")
    if not isinstance(persons, np.ndarray) or persons.ndim != 1 or persons.dtype.kind not in "iu":
        raise InputError("persons must be a 1-D integer numpy array")
    check_indices("persons", persons, 0, n_p)
    m = persons.shape[0]
    check_array("out.arrive", out.arrive, np.float64, length=m, writeable=True)
    check_array("out.state", out.state, np.int8, length=m, writeable=True)
    check_array("out.node", out.node, np.int32, length=m, writeable=True)
    cars = trips.vid[persons][trips.mode[persons] == _CAR]
    check_indices("trips.vid (of a car trip)", cars, 0, n_v)
    return _trip_positions(persons, trips, veh, float(now), out)
