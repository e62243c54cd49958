"""Scenario sections ``incidents`` and ``resources`` (emergency response).

Placeholder until the issue that owns it lands: free-form mappings.
"""

from __future__ import annotations

from typing import Any

__all__ = ['IncidentsSpec', 'ResourcesSpec']

IncidentsSpec = dict[str, Any]

ResourcesSpec = dict[str, Any]
