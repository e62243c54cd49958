"""What-if interventions on the twin's clock (being built: see issue 5)."""

from __future__ import annotations

__all__ = ["build"]


def build(twin):
    """The interventions component, or ``None`` when the scenario has none."""
    if not twin.scenario.interventions:
        return None
    raise NotImplementedError("interventions are not implemented yet")
