"""Fuzzing the population's zone file reader: any GeoJSON or CSV gives zones or a
PopulationError naming the file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from city_models.population import PopulationError, read_zone_file
from tests.city_models.helpers import tiny_network

from .conftest import RUNS, bounded, fuzz_settings


@pytest.fixture(scope="module")
def network():
    xy = [(0, 0), (1000, 0), (1000, 1000), (0, 1000)]
    return tiny_network(
        xy,
        [(0, 1), (1, 2), (2, 3), (3, 0)],
        lon=24.9 + np.array([0, 0.018, 0.018, 0]),
        lat=60.1 + np.array([0, 0, 0.009, 0.009]),
    )


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.integers(2**62, 2**80),
    st.sampled_from([1e300, -1.0, 0.5, "12", "x", "", "1e400", "nan", [1], {"a": 1}]),
    st.floats(allow_nan=True),
    st.text(max_size=6),
)
COORD = st.one_of(st.floats(allow_nan=True), st.sampled_from([24.9, 60.1, 24.91, 60.105]), st.text(max_size=4))


@st.composite
def geojson(draw):
    feats = []
    for _ in range(draw(st.integers(0, 4))):
        props = draw(
            st.dictionaries(st.sampled_from(["name", "residents", "jobs", "schools", "id"]), VALUES, max_size=5)
        )
        if draw(st.booleans()):
            geom = {"type": "Point", "coordinates": draw(st.lists(COORD, max_size=3))}
        else:
            ring = draw(st.lists(st.lists(COORD, min_size=0, max_size=3), max_size=6))
            geom = {"type": draw(st.sampled_from(["Polygon", "MultiPolygon", "Line", None])), "coordinates": [ring]}
        feats.append(draw(st.sampled_from([{"properties": props, "geometry": geom}, None, [], "x"])))
    doc = draw(st.sampled_from([{"type": "FeatureCollection", "features": feats}, {"features": feats}, feats, {}]))
    return json.dumps(doc, default=str)


@st.composite
def csv_text(draw):
    header = draw(
        st.sampled_from(
            [
                "zone,residents,jobs,x,y",
                "name,residents,jobs,lon,lat,schools",
                "zone,jobs",
                "zone,residents,jobs,x,y,schools",
                "",
            ]
        )
    )
    rows = draw(st.lists(st.lists(st.one_of(VALUES.map(str), st.text(max_size=5)), max_size=6), max_size=6))
    return header + "\n" + "\n".join(",".join(r) for r in rows)


@RUNS
def test_any_zone_file_gives_zones_or_a_population_error(examples, tmp_path, network, memory_bound):
    @fuzz_settings(examples)
    @given(kind=st.sampled_from(["geojson", "csv"]), data=st.data())
    def check(kind, data):
        text = data.draw(geojson() if kind == "geojson" else csv_text())
        path = tmp_path / f"zones.{kind}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        with bounded("read_zone_file"):
            try:
                table = read_zone_file(path, network)
            except PopulationError as exc:
                assert str(path) in str(exc)
                return
        assert table.zones.node_zone.shape[0] == network.n_nodes

    check()
