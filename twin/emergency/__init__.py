"""Emergency response on the live network: incidents, units and dispatch as discrete events.

The component (``twin.components["emergency"]``) runs when the scenario's ``incidents``
section has stochastic rates or a drill timeline (or ``incidents.enabled: true``).
See :mod:`twin.emergency.component` for the processes, :mod:`twin.emergency.dispatch`
for dispatch policies, :mod:`twin.emergency.report` for results and KPIs and
:mod:`scenarios.emergency` for the scenario sections.
"""

from __future__ import annotations

from twin.emergency.component import EmergencyComponent

__all__ = ["build", "EmergencyComponent"]


def build(twin):
    """The emergency component, or ``None`` when the scenario has no incidents."""
    if not twin.scenario.incidents.active:
        return None
    return EmergencyComponent(twin)
