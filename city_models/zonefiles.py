"""Zone files for real cities (issue 13, part 4): GeoPackage layers, and a city's zones
replaced by a zone file's.

A planner's zone file has a population column and a jobs column under whatever
names their office uses; these are read (case-insensitively) as:

* residents: ``residents``, ``population``, ``pop``, ``inhabitants``;
* jobs: ``jobs``, ``employment``, ``workplaces``;
* schools (optional): ``schools``, ``school_places``;
* the zone's name: ``name``, ``zone``, ``id``.

A file without a residents or jobs column is a :class:`PopulationError` naming the
file, the layer, the column looked for and the columns found.  Geometries may be in
any CRS the file states (reprojected to longitude/latitude); polygons take the
network's nodes inside them, points take the nodes nearest to them (see
:func:`city_models.population.read_zone_file`).

With ``city: {zones: FILE}`` in a scenario the file's zones become the city's
(:func:`city_with_zones`), so the gravity model and the population synthesis both
use them; without one, zones come from a grid as before.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from city_models.city import City
from city_models.network import Network
from city_models.population import PopulationError, ZoneTable, read_zone_file, zones_from_features

__all__ = ["read_geopackage", "city_with_zones", "COLUMN_NAMES"]

#: our field -> the column names read for it (first found, case-insensitive)
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "residents": ("residents", "population", "pop", "inhabitants"),
    "jobs": ("jobs", "employment", "workplaces"),
    "schools": ("schools", "school_places"),
    "name": ("name", "zone", "id"),
}


def _pick_layer(path: Path) -> str:
    import pyogrio

    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
    except Exception as exc:  # noqa: BLE001 - any driver failure names the file
        raise PopulationError(f"zone file '{path}' could not be read as a GeoPackage: {exc}") from None
    if not layers:
        raise PopulationError(f"zone file '{path}' has no layers")
    return "zones" if "zones" in layers else layers[0]


def _columns(cols: list[str], path: Path, layer: str) -> dict[str, str]:
    """Our field -> the file's column (residents and jobs required)."""
    lower = {c.lower(): c for c in cols}
    found: dict[str, str] = {}
    for field, names in COLUMN_NAMES.items():
        hit = next((lower[n] for n in names if n in lower), None)
        if hit is not None:
            found[field] = hit
        elif field in ("residents", "jobs"):
            raise PopulationError(
                f"zone file '{path}', layer {layer!r}: no {field} column (looked for "
                f"{', '.join(repr(n) for n in names)}); its columns are {', '.join(cols) or 'none'}"
            )
    return found


def _value(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


def read_geopackage(path: str | Path, network: Network) -> ZoneTable:
    """Zones from a GeoPackage layer (the one named ``zones``, else the first).

    Parameters
    ----------
    path : str or Path
        The ``.gpkg`` file.
    network : Network
        The nodes assigned to the zones (they need longitude/latitude).

    Returns
    -------
    ZoneTable
        Zones with residents, jobs, and schools where the layer has them.

    Raises
    ------
    PopulationError
        Naming the file, the layer and the column or the feature (row) that is wrong.
    """
    import pyogrio

    path = Path(path)
    if not path.is_file():
        raise PopulationError(f"zone file '{path}' does not exist")
    layer = _pick_layer(path)
    try:
        gdf = pyogrio.read_dataframe(path, layer=layer)
    except Exception as exc:  # noqa: BLE001
        raise PopulationError(f"zone file '{path}', layer {layer!r} could not be read: {exc}") from None
    if len(gdf) == 0:
        raise PopulationError(f"zone file '{path}', layer {layer!r} has no features")
    cols = _columns([str(c) for c in gdf.columns if c != gdf.geometry.name], path, layer)
    if gdf.crs is not None and not gdf.crs.equals("EPSG:4326"):
        gdf = gdf.to_crs("EPSG:4326")
    records = gdf.drop(columns=[gdf.geometry.name]).to_dict("records")
    feats = []
    for i, (geom, rec) in enumerate(zip(gdf.geometry, records, strict=True)):
        if geom is None or geom.is_empty:
            raise PopulationError(f"zone file '{path}', layer {layer!r}, row {i + 1}: the feature has no geometry")
        props = {field: _value(rec.get(col)) for field, col in cols.items()}
        feats.append({"type": "Feature", "properties": props, "geometry": geom.__geo_interface__})
    return zones_from_features(feats, path, network, item=f"layer {layer!r}, row")


def city_with_zones(city: City, path: str | Path) -> City:
    """``city`` with its zones replaced by a zone file's (GeoJSON, GeoPackage or CSV).

    Raises
    ------
    PopulationError
        From :func:`city_models.population.read_zone_file`, naming the file and what is wrong.
    """
    table = read_zone_file(Path(path), city.network)
    z = table.zones
    placed = int((z.node_zone >= 0).sum())
    note = (
        f"Zones from '{path}': {z.n_zones} zones, {int(z.residents.sum()):,} residents, {int(z.jobs.sum()):,} jobs; "
        f"{placed} of {city.network.n_nodes} nodes in a zone."
    )
    return dataclasses.replace(city, zones=z, notes=(*city.notes, note))
