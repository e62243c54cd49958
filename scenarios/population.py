"""Scenario section ``population`` (synthesised persons and their day plans).

Placeholder until the issue that owns it lands: free-form mappings.
"""

from __future__ import annotations

from typing import Any

__all__ = ['PopulationSpec']

PopulationSpec = dict[str, Any]
