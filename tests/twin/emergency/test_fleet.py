"""The fleet and the incident book: the records and the index mirroring them stay in step."""

import math

import numpy as np
import pytest

from twin.emergency.fleet import Fleet
from twin.emergency.incidents import Incident, IncidentBook
from twin.emergency.resources import (
    AVAILABLE,
    ENROUTE,
    OUT_OF_SERVICE,
    REMOVED,
    RETURNING,
    Station,
    Unit,
)


def _fleet() -> Fleet:
    stations = [Station("North", "fire", 3), Station("South", "ems", 7, mutual_aid=True)]
    units = [
        Unit(0, "engine", 0, node=3),
        Unit(1, "engine", 0, node=3),
        Unit(2, "ambulance", 1, node=7),
        Unit(3, "engine", 1, node=7),
    ]
    return Fleet(stations, units, ["ambulance", "engine"])


def test_free_units_by_kind_follow_the_states():
    f = _fleet()
    assert f.names == ["engine 1 (North)", "engine 2 (North)", "ambulance 1 (South)", "engine 1 (South)"]
    mask = f.free_mask()
    assert f.free_by_kind(mask) == {"ambulance": 1, "engine": 3}
    f.set_state(f.units[1], ENROUTE)
    f.set_state(f.units[3], RETURNING)  # driving home: may be sent
    assert f.of_kind("engine", f.free_mask()).tolist() == [0, 3]
    assert f.returning(np.array([0, 3])).tolist() == [1]
    assert f.any_moving() and f.moving().tolist() == [1, 3]
    assert f.stations_of(np.array([0, 3])).tolist() == [0, 1]
    assert f.station_nodes(np.array([0, 1])).tolist() == [3, 7]
    assert f.mutual_aid(np.array([0, 1])).tolist() == [False, True] and f.any_mutual_aid
    f.check_index()


def test_station_service_removal_and_moves_keep_the_index():
    f = _fleet()
    f.free_mask()  # the mask is kept from now on
    f.set_state(f.units[1], ENROUTE)
    f.set_in_service(0, False)
    assert [u.state for u in f.units[:2]] == [OUT_OF_SERVICE, ENROUTE]  # the unit on a job keeps it
    assert f.free_by_kind(f.free_mask()) == {"ambulance": 1, "engine": 1}
    f.set_in_service(0, True)
    assert f.units[0].state == AVAILABLE
    retired = f.remove_station(0)
    assert [u.id for u in retired] == [0] and f.units[0].state == REMOVED and f.units[0].done
    assert not f.units[1].done  # back after its job
    f.rehome(f.units[1], 1)
    assert f.stations_of(np.array([1])).tolist() == [1]
    new = f.add_station(Station("East", "fire", 9), {"engine": 2})
    assert new == [4, 5] and f.names[4:] == ["engine 1 (East)", "engine 2 (East)"]
    assert f.free_by_kind(f.free_mask()) == {"ambulance": 1, "engine": 3}
    f.check_index()


def test_check_index_catches_a_record_changed_behind_the_fleet():
    f = _fleet()
    f.units[2].state = ENROUTE  # not through set_state
    with pytest.raises(RuntimeError, match="unit 2: the index disagrees"):
        f.check_index()
    f = _fleet()
    f.stations[1].in_service = False  # not through set_in_service
    with pytest.raises(RuntimeError, match="station South"):
        f.check_index()


def _incident(i: int, priority: int, t_reported: float) -> Incident:
    inc = Incident(
        id=i,
        type="fire",
        severity=priority,
        priority=priority,
        node=0,
        links=(),
        source="drill",
        notes="",
        t_occur=0.0,
        call_delay_s=0.0,
        work_s=60.0,
        clear_s=0.0,
        transport=False,
        clear_done=True,
    )
    inc.t_reported = t_reported
    return inc


def test_incident_book_serves_by_priority_then_report_time():
    book = IncidentBook()
    for i, (prio, t) in enumerate([(1, 10.0), (3, 30.0), (3, 20.0), (1, 5.0)]):
        book.add(_incident(i, prio, t))
        book.enqueue(i)
    book.enqueue(2)  # already waiting: no second entry
    assert book.queue == [0, 1, 2, 3] and book.waiting() == [2, 1, 3, 0]
    book.note_waiting()
    book.dequeue(1)
    book.dequeue(1)  # not waiting any more: a no-op
    assert not book.queued(1) and book.queued(2) and book.max_waiting == 4
    assert len(book) == 4 and [inc.id for inc in book] == [0, 1, 2, 3] and book.n_open == 4
    book.cleared(book[0])
    assert book.n_open == 3 and math.isnan(book[0].t_cleared)
    with pytest.raises(RuntimeError, match="incident 9 booked as number 4"):
        book.add(_incident(9, 1, 0.0))
