"""Scenario section ``interventions``: a timeline of what-if changes.

Placeholder until the what-if issue lands: free-form entries.
"""

from __future__ import annotations

from typing import Any

__all__ = ["InterventionSpec"]

InterventionSpec = dict[str, Any]
