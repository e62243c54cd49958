"""Scenario section ``feeds`` (live data sources, sensor table, cleansing, assimilation).

Placeholder until the issue that owns it lands: free-form mappings.
"""

from __future__ import annotations

from typing import Any

__all__ = ['FeedsSpec']

FeedsSpec = dict[str, Any]
