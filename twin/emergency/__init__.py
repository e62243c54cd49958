"""Emergency response on the live network: incidents, units and dispatch as discrete events.

The component (``twin.components["emergency"]``) runs when the scenario's ``incidents``
section has stochastic rates or a drill timeline (or ``incidents.enabled: true``).
See :mod:`twin.emergency.component` for the processes, :mod:`twin.emergency.dispatch`
for dispatch policies, :mod:`twin.emergency.report` for results and KPIs and
:mod:`scenarios.emergency` for the scenario sections.

The component is composed of parts, each owning its records:

- :class:`~twin.emergency.fleet.Fleet` (``comp.fleet``): stations and units, their
  states and homes, and who is free by kind;
- :class:`~twin.emergency.incidents.IncidentBook` (``comp.book``): the incident records,
  the dispatch queue and its counts;
- :class:`~twin.emergency.agenda.Agenda` (``comp.agenda``): every record's next step,
  run by one process;
- :class:`~twin.emergency.centre.DispatchCentre` (``comp.centre``): the dispatch rounds;
- :class:`~twin.emergency.routes.UnitRoutes` (``comp.routes``): unit trips on the roads;
- :class:`~twin.emergency.control.ControlDesk` (``comp.control``): station changes,
  unit moves and injects.

The component itself runs the incident life cycle and the units' steps, and reads
and changes units and incidents only through the fleet and the book.
"""

from __future__ import annotations

from twin.emergency.component import EmergencyComponent

__all__ = ["build", "EmergencyComponent"]


def build(twin):
    """The emergency component, or ``None`` when the scenario has no incidents."""
    if not twin.scenario.incidents.active:
        return None
    return EmergencyComponent(twin)
