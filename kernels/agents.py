"""Where persons with a trip are now: one pass over the travellers.

The population component keeps, for each person with a trip (decided, maybe
not started), its mode, vehicle, departure and destination.  :func:`trip_positions`
says for each of them, at time ``now``, when the trip arrives (the traffic
model's arrival for drivers, the known arrival otherwise), whether they are
still where they set off from, under way, or already arrived, and the node
whose zone they count in (for a driver on a link, the link's end).
"""

from __future__ import annotations

from numba import njit

__all__ = ["trip_positions", "STATE_HOME", "STATE_ACTIVITY", "STATE_TRAVELLING"]

STATE_HOME, STATE_ACTIVITY, STATE_TRAVELLING = 0, 1, 2
_CAR = 0
_HOME_PURPOSE = 0


@njit(cache=True)
def trip_positions(
    persons,
    mode,
    vid,
    dep,
    arr_known,
    dest,
    purpose,
    place,
    node,
    veh_arrive,
    veh_link,
    link_dst,
    now,
    arrive_out,
    state_out,
    node_out,
):
    """Arrival time, state and counting node of each person in ``persons``.

    Parameters
    ----------
    persons : int64[m]
        Persons with a trip.
    mode, vid, dep, arr_known, dest, purpose : per-person trip arrays
        Mode (0: car), vehicle id, departure, arrival when known in advance
        (no car), destination node and purpose (0: home).
    place, node : per-person arrays
        Where they rest (0 home, 1 activity) and at which node, before the trip.
    veh_arrive, veh_link : per-vehicle arrays
        The traffic model's arrival times (NaN until arrived) and links
        (>= 0 on a link).
    link_dst : int32[n_links]
        Downstream node of each link.
    now : float
        The time asked about.
    arrive_out : float64[m]
        Output: arrival time (NaN while under way).
    state_out : int8[m]
        Output: 0 at home, 1 at an activity, 2 travelling.
    node_out : int32[m]
        Output: the node whose zone the person counts in.
    """
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
