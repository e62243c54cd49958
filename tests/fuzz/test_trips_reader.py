"""Fuzzing the trips reader: any table gives Trips or a DemandError naming the file."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from city_models.demand import DemandError, Trips, read_trips_csv
from tests.city_models.helpers import tiny_network

from .conftest import RUNS, bounded, fuzz_settings


@pytest.fixture(scope="module")
def network():
    return tiny_network([(0, 0), (100, 0), (100, 100), (0, 100)], [(0, 1), (1, 2), (2, 3), (3, 0)])


CELLS = st.one_of(
    st.integers(-3, 6).map(str),
    st.integers().map(str),
    st.sampled_from(
        [
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551616",
            "-9223372036854775809",
            "1e400",
            "nan",
            "inf",
            "-0",
            "1.5",
            "0x10",
            "",
            " ",
            '"1"',
            "1,2",
            "\x00",
            "é",
            "1e18",
        ]
    ),
    st.floats(allow_nan=True).map(repr),
    st.text(max_size=8),
)
HEADERS = st.sampled_from(
    [
        "trip_id,origin,destination,depart_s",
        "trip_id,origin,destination",
        "depart_s,destination,origin,trip_id,extra",
        "trip_id;origin;destination;depart_s",
        "",
        "\ufefftrip_id,origin,destination,depart_s",
    ]
)


def _table(header: str, rows: list[list[str]]) -> str:
    return header + "\n" + "\n".join(",".join(r) for r in rows) + ("\n" if rows else "")


def _read(path, network):
    try:
        trips = read_trips_csv(path, network, duration_s=3600.0)
    except DemandError as exc:
        assert str(path) in str(exc), "the error names the file"
        return None
    assert isinstance(trips, Trips)
    n = network.n_nodes
    assert trips.trip_id.dtype == np.int64 and np.unique(trips.trip_id).size == trips.n_trips
    assert ((trips.origin >= 0) & (trips.origin < n) & (trips.destination >= 0) & (trips.destination < n)).all()
    assert (np.isfinite(trips.depart_s) & (trips.depart_s >= 0)).all()
    return trips


@RUNS
def test_any_table_gives_trips_or_a_demand_error(examples, tmp_path, network, memory_bound):
    path = tmp_path / "trips.csv"

    @fuzz_settings(examples)
    @given(header=HEADERS, rows=st.lists(st.lists(CELLS, min_size=0, max_size=5), max_size=12))
    def check(header, rows):
        path.write_text(_table(header, rows), encoding="utf-8", errors="surrogatepass")
        with bounded("read_trips_csv"):
            _read(path, network)

    check()


@RUNS
def test_any_gzip_truncation_or_corruption_gives_a_demand_error(examples, tmp_path, network, memory_bound):
    path = tmp_path / "trips.csv.gz"
    good = gzip.compress(
        _table(
            "trip_id,origin,destination,depart_s", [[str(i), str(i % 4), str((i + 1) % 4), str(i)] for i in range(200)]
        ).encode()
    )

    @fuzz_settings(examples)
    @given(cut=st.integers(0, len(good)), flip=st.integers(0, len(good) - 1), byte=st.integers(0, 255))
    def check(cut, flip, byte):
        data = bytearray(good)
        data[flip] = byte
        path.write_bytes(bytes(data[:cut]))
        with bounded("read_trips_csv(.gz)"):
            _read(path, network)

    check()
