"""The city: a road network plus zones and facilities."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from city_models.network import Network

__all__ = ["City", "Zones", "Facility"]


@dataclass(frozen=True)
class Zones:
    """Traffic analysis zones.  ``node_zone[i]`` is the zone of node ``i`` (-1: none)."""

    name: tuple[str, ...]
    residents: np.ndarray  # int64 (n_zones,)
    jobs: np.ndarray  # int64 (n_zones,)
    x: np.ndarray  # float64 centroid (n_zones,)
    y: np.ndarray  # float64 centroid (n_zones,)
    node_zone: np.ndarray  # int32 (n_nodes,)

    @property
    def n_zones(self) -> int:
        """The number of zones."""
        return len(self.name)


@dataclass(frozen=True)
class Facility:
    """A fire station, ambulance station, police station or hospital on a node."""

    kind: str  # 'fire_station' | 'ems_station' | 'police_station' | 'hospital' | ...
    name: str
    node: int
    capacity: int = 0  # units (stations) or beds (hospitals)


@dataclass(frozen=True)
class City:
    """Everything the twin needs to know about a city that does not change during a run."""

    name: str
    network: Network
    zones: Zones
    facilities: tuple[Facility, ...] = ()
    #: what validation/repair changed, in plain sentences
    notes: tuple[str, ...] = ()
    #: named places (bridges, squares): name -> link ids or node ids
    places: dict[str, Any] = field(default_factory=dict)
    #: road shapes from the source (:class:`city_models.shapes.LinkShapes`), None when it has none
    link_shapes: Any = None
