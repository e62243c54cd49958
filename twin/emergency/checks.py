"""Consistency checks of the emergency records (tests call them after every event)."""

from __future__ import annotations

from twin.emergency.incidents import CLEARED, REPORTED, WORKING
from twin.emergency.resources import BUSY, DISPATCHED, ENROUTE, RETURNING, TRANSPORT

__all__ = ["check_invariants"]


def check_invariants(comp) -> None:
    """Raise ``RuntimeError`` if the records disagree (tests call it after every event).

    No unit is busy without an incident that lists it, or listed by two incidents;
    units not on a job are listed by none; queued incidents need units and every
    incident that needs units is queued; cleared incidents hold no unit; the
    remaining route of every moving unit uses open links only.
    """
    owner: dict[int, int] = {}
    book = comp.book
    for inc in book:
        for u in inc.assigned:
            if u in owner:
                raise RuntimeError(f"unit {u} is booked by incidents {owner[u]} and {inc.id}")
            owner[u] = inc.id
        if inc.stage == CLEARED and (inc.assigned or inc.need):
            raise RuntimeError(f"cleared incident {inc.id} still holds units {inc.assigned} or needs {inc.need}")
        needs = sum(inc.need.values()) > 0
        if needs != book.queued(inc.id):
            raise RuntimeError(f"incident {inc.id}: needs {inc.need} but queued={book.queued(inc.id)}")
        if needs and inc.stage not in (REPORTED, WORKING):
            raise RuntimeError(f"incident {inc.id} needs units at stage {inc.stage}")
    comp.fleet.check_index()
    for u in comp.fleet.units:
        busy = u.state in BUSY
        if busy != (u.id in owner) or busy != (u.incident >= 0) or (busy and owner[u.id] != u.incident):
            raise RuntimeError(f"unit {u.id} state {u.state}, incident {u.incident}, listed by {owner.get(u.id)}")
        if u.state in (ENROUTE, TRANSPORT, RETURNING, DISPATCHED) and u.path.shape[0]:
            rest = comp.routes.rest(u)
            if rest.size and comp.router.is_closed(rest).any():
                raise RuntimeError(
                    f"unit {u.id} is routed over closed link(s) {rest[comp.router.is_closed(rest)].tolist()}"
                )
