"""Hand-made cities and scenarios for the emergency tests."""

from __future__ import annotations

import numpy as np

from city_models import City, Facility, Zones
from city_models.network import make_network
from scenarios import load_scenario


def line_city(
    n: int = 5, *, link_m: float = 1000.0, speed: float = 10.0, places: dict | None = None, facilities=()
) -> City:
    """``n`` nodes on a line, ``link_m`` apart, two-way links at ``speed`` (100 s per link by default).

    Link ``2k`` goes from node ``k`` to ``k+1``, link ``2k+1`` back.
    """
    x = np.arange(n) * link_m
    src, dst = [], []
    for k in range(n - 1):
        src += [k, k + 1]
        dst += [k + 1, k]
    net = make_network(
        x=x,
        y=np.zeros(n),
        src=src,
        dst=dst,
        length_m=np.full(len(src), link_m),
        lanes=1.0,
        free_speed_mps=speed,
        node_osmid=np.arange(n),
        link_osmid=np.arange(len(src)),
        lon=24.9 + x / 55_000.0,
        lat=np.full(n, 60.17),
    )
    zones = Zones(
        name=("Z0",),
        residents=np.array([1000]),
        jobs=np.array([1000]),
        x=np.array([x.mean()]),
        y=np.array([0.0]),
        node_zone=np.zeros(n, np.int32),
    )
    return City(name=f"line{n}", network=net, zones=zones, facilities=tuple(facilities), places=places or {})


def scenario(
    incidents: dict,
    resources: dict | None = None,
    *,
    duration="2h",
    start="00:00",
    trips=0,
    step="1s",
    interval="5min",
    city=None,
    **extra,
):
    """A scenario for a hand-made city (``city`` is only a placeholder: pass ``city=`` to the Twin)."""
    data = {
        "name": "em-test",
        "seed": 1,
        "time": {"start": start, "duration": duration, "step": step},
        "city": city
        or {"synthetic": {"blocks_x": 2, "blocks_y": 2, "river": False, "ring_road": False, "zone_blocks": 1}},
        "demand": {"gravity": {"total_trips": trips}},
        "outputs": {"interval": interval},
        "incidents": incidents,
    }
    if resources is not None:
        data["resources"] = resources
    data.update(extra)
    return load_scenario(data)


FIXED = {"call_delay": 60, "turnout": 30, "emergency_speed_factor": 1.0}


def medical_only(on_scene=600, **kw) -> dict:
    """A single incident type: one ambulance, fixed on-scene time, no transport."""
    return {"units": {"ambulance": 1}, "on_scene": on_scene, "transport": 0.0, **kw}


Facility = Facility


def ladder_city() -> City:
    """Two routes from node 0 to node 2: direct over "Bridge A" (0-1-2, 200 s) or round over
    "Bridge B" (0-3-4-2, 300 s); every link 1000 m at 10 m/s, both directions."""
    x = np.array([0.0, 1000.0, 1000.0, 0.0, 0.0])
    y = np.array([0.0, 0.0, 1000.0, 1000.0, 2000.0])
    pairs = [(0, 1), (1, 2), (0, 3), (3, 4), (4, 2)]
    src, dst = [], []
    for a, b in pairs:
        src += [a, b]
        dst += [b, a]
    net = make_network(
        x=x,
        y=y,
        src=src,
        dst=dst,
        length_m=np.full(len(src), 1000.0),
        lanes=1.0,
        free_speed_mps=10.0,
        node_osmid=np.arange(5),
        link_osmid=np.arange(len(src)),
    )
    zones = Zones(
        name=("Z0",),
        residents=np.array([1]),
        jobs=np.array([1]),
        x=np.array([500.0]),
        y=np.array([500.0]),
        node_zone=np.zeros(5, np.int32),
    )
    return City(
        name="ladder", network=net, zones=zones, places={"Bridge A": np.array([2, 3]), "Bridge B": np.array([6, 7])}
    )
