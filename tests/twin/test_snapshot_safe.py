"""Snapshots that run no code when read (issue 15 part 2): hostile, truncated, bit-flipped and
other-version files give clear errors; plug-in dispatch policies only when registered or allowed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from basics.errors import InputError
from tests.twin.conftest import small_scenario
from twin.model import Twin
from twin.snapshot import FORMAT, VERSION, SnapshotError, snapshot_bytes

INCIDENTS = {
    "rates": {"medical": {"per_hour": 12}},
    "drill": [{"at": "07:04", "type": "fire", "location": "Old Bridge", "severity": 2}],
}


class _Marker:
    """Unpickling this creates the marker file (what a hostile pickle would do, harmlessly)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def snap(small_city, tmp_path_factory):
    tw = Twin(small_scenario(incidents=INCIDENTS), city=small_city)
    tw.run_until("07:10")
    path = tmp_path_factory.mktemp("snap") / "now.snap"
    tw.snapshot(path)
    return path


def _seal(header: dict, body: bytes) -> bytes:
    """A well-formed snapshot file around ``body`` (right length and checksum: sha256 of the body,
    a newline and the header line)."""
    header = {**header, "body_bytes": len(body)}
    line = json.dumps(header).encode()
    return line + b"\n" + b"sha256:" + hashlib.sha256(body + b"\n" + line).hexdigest().encode() + b"\n" + body


def _header(snap) -> dict:
    return json.loads(snap.read_bytes().split(b"\n", 1)[0])


def _body(manifest: dict, arrays=(), *, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        for k, a in enumerate(arrays):
            with zf.open(f"a{k}.npy", "w") as fh:
                np.lib.format.write_array(fh, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def _fork_cli(snapshot, tmp_path) -> int:
    from twin.cli import main

    variant = tmp_path / "v.yaml"
    variant.write_text("name: v\ninterventions: []\n")
    return main(["fork", str(snapshot), "--scenario", str(variant), "--horizon", "5min", "--workers", "0"])


def _hostile_files(snap, tmp_path, marker):
    """Snapshot files that would create ``marker`` if anything in them were unpickled or called."""
    evil = pickle.dumps(_Marker(marker))
    header = _header(snap)
    old = json.dumps({**header, "format": "city-twin-snapshot/1"}).encode() + b"\n" + evil
    obj_array = np.empty(1, dtype=object)
    obj_array[0] = _Marker(marker)
    files = {
        "old pickle format": old,
        "pickle in an array": _seal(header, _body({"root": {"a": 0, "i": 0}}, [obj_array], allow_pickle=True)),
        "class named in the manifest": _seal(
            header, _body({"root": {"o": "builtins:open", "i": 0, "s": {"t": [str(marker), "w"], "i": 1}}})
        ),
        "function named in the manifest": _seal(header, _body({"root": {"l": [{"fn": "os:system"}], "i": 0}})),
        "method named in the manifest": _seal(header, _body({"root": {"me": "__init__", "self": "x"}})),
        "plug-in policy named in the manifest": _seal(header, _body({"root": {"fn": "builtins:open"}})),
    }
    paths = {}
    for name, data in files.items():
        p = tmp_path / (name.replace(" ", "_") + ".snap")
        p.write_bytes(data)
        paths[name] = p
    return paths


def test_a_hostile_snapshot_never_runs_its_code(snap, tmp_path):
    marker = tmp_path / "MARKER"
    pickle.loads(pickle.dumps(_Marker(marker)))  # the payload works: unpickled, it makes the marker
    assert marker.exists()
    marker.unlink()
    for name, path in _hostile_files(snap, tmp_path, marker).items():
        with pytest.raises(SnapshotError) as err:
            Twin.restore(path)
        assert str(path) in str(err.value), name
        assert not marker.exists(), name
    with pytest.raises(SnapshotError, match="old format 1.*could run code"):
        Twin.restore(tmp_path / "old_pickle_format.snap")


def test_twin_fork_refuses_hostile_snapshots_in_the_cli_and_the_workers(snap, tmp_path, capsys):
    from twin.live.fork import Variant, run_fork

    marker = tmp_path / "MARKER"
    for name, path in _hostile_files(snap, tmp_path, marker).items():
        assert _fork_cli(path, tmp_path) == 2, name
        out = capsys.readouterr()
        assert "error" in out.err and "Traceback" not in out.err + out.out, name
        with pytest.raises(SnapshotError):  # what a Dask worker runs, given the bytes
            run_fork(path.read_bytes(), Variant(name="v"), 300.0)
        assert not marker.exists(), name


def test_truncated_snapshots_give_a_clear_error(snap, tmp_path, capsys):
    data = snap.read_bytes()
    for n in (0, 10, data.index(b"\n"), data.index(b"\n") + 30, len(data) // 2, len(data) - 1):
        path = tmp_path / f"cut{n}.snap"
        path.write_bytes(data[:n])
        with pytest.raises(SnapshotError, match="not a city-twin snapshot|incomplete|damaged"):
            Twin.restore(path)
    path = tmp_path / "half.snap"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SnapshotError, match=r"incomplete or damaged: .* bytes of state where its header says"):
        Twin.restore(path)
    assert _fork_cli(path, tmp_path) == 2
    assert "truncated" in capsys.readouterr().err


def test_bit_flipped_snapshots_give_a_clear_error(snap, tmp_path, capsys):
    data = snap.read_bytes()
    rng = np.random.default_rng(7)
    body_start = data.index(b"\n", data.index(b"\n") + 1) + 1
    positions = [
        3,
        data.index(b"\n") + 20,
        body_start + 5,
        body_start + len(data[body_start:]) // 2,
        len(data) - 3,
    ] + list(rng.integers(body_start, len(data), 20))
    for pos in positions:
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(8))
        path = tmp_path / f"flip{pos}.snap"
        path.write_bytes(bytes(flipped))
        with pytest.raises(SnapshotError, match="damaged|not a city-twin snapshot|incomplete"):
            Twin.restore(path)
    assert _fork_cli(path, tmp_path) == 2
    assert "checksum does not match" in capsys.readouterr().err


def test_other_versions_are_named(snap, tmp_path):
    data = snap.read_bytes()
    line, rest = data.split(b"\n", 1)
    header = json.loads(line)
    path = tmp_path / "v9.snap"
    path.write_bytes(json.dumps({**header, "version": VERSION + 7}).encode() + b"\n" + rest)
    with pytest.raises(SnapshotError, match=f"format version {VERSION + 7}.*reads version {VERSION}"):
        Twin.restore(path)
    path.write_bytes(json.dumps({**header, "package_version": "0.0.1"}).encode() + b"\n" + rest)
    with pytest.raises(SnapshotError, match="written by city-twin 0.0.1"):
        Twin.restore(path)
    assert header["format"] == FORMAT


def test_an_array_larger_than_its_bytes_is_refused(snap, tmp_path):
    """A forged array header (a huge shape over a few bytes) is refused before it is allocated."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"root": {"a": 0, "i": 0}}))
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
        zf.writestr("a0.npy", head.getvalue() + b"\0" * 64)
    path = tmp_path / "huge.snap"
    path.write_bytes(_seal(_header(snap), buf.getvalue()))
    with pytest.raises(SnapshotError, match="does not fit its"):
        Twin.restore(path)


def test_restored_state_round_trips_in_memory(small_city):
    """snapshot_bytes / twin_from_bytes (what forks send to workers) equal a file's round trip."""
    from twin.snapshot import twin_from_bytes

    tw = Twin(small_scenario(incidents=INCIDENTS), city=small_city)
    tw.run_until("07:12")
    back = twin_from_bytes(snapshot_bytes(tw))
    tw.run()
    back.run()
    a, b = tw.results(), back.results()
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert back.components["emergency"].policy is tw.components["emergency"].policy


# ------------------------------------------------------------------ plug-in dispatch policies
def picky_policy(incident, kind, n, cand):
    """A plug-in policy for the tests: the lowest unit ids."""
    return sorted(int(u) for u in cand.units[np.isfinite(cand.travel_s)])[:n]


@pytest.fixture
def clean_plugins(monkeypatch):
    from twin.emergency import dispatch

    monkeypatch.setattr(dispatch, "_ALLOWED", set())
    monkeypatch.setattr(dispatch, "_REGISTERED", {})
    return dispatch


def test_a_scenario_naming_os_system_is_refused_and_never_called(small_city, monkeypatch, clean_plugins):
    calls = []
    monkeypatch.setattr(os, "system", lambda *a, **k: calls.append(a) or 0)
    with pytest.raises(
        InputError,
        match=r"incidents\.policy: cannot load dispatch policy 'os:system'.*"
        r"--allow-plugins os:system",
    ):
        Twin(small_scenario(incidents={**INCIDENTS, "policy": "os:system"}), city=small_city).run()
    assert calls == []


def test_twin_run_refuses_a_plugin_from_the_scenario_alone(tmp_path, monkeypatch, clean_plugins, capsys):
    from twin.cli import main

    calls = []
    monkeypatch.setattr(os, "system", lambda *a, **k: calls.append(a) or 0)
    sc = tmp_path / "evil.yaml"
    sc.write_text(
        "extends: light_day\nname: evil\ntime: {duration: 10min}\n"
        "incidents: {policy: 'os:system', drill: [{at: '07:01', type: fire, location: 3}]}\n"
    )
    assert main(["run", str(sc), "--out", str(tmp_path / "out"), "-q"]) == 2
    assert "--allow-plugins" in capsys.readouterr().err
    assert calls == []


def test_allowed_and_registered_plugins_load_and_survive_a_snapshot(small_city, tmp_path, clean_plugins):
    dispatch = clean_plugins
    name = f"{__name__}:picky_policy"
    sc = small_scenario(incidents={**INCIDENTS, "policy": name})
    with pytest.raises(InputError, match="--allow-plugins"):
        Twin(sc, city=small_city)
    dispatch.allow_plugins([name])
    tw = Twin(sc, city=small_city)
    assert tw.components["emergency"].policy is picky_policy
    tw.run_until("07:10")
    path = tw.snapshot(tmp_path / "plug.snap")
    assert Twin.restore(path).components["emergency"].policy is picky_policy
    # a process that does not trust the plug-in cannot restore it from the file
    dispatch._ALLOWED.clear()
    dispatch._REGISTERED.clear()
    with pytest.raises(SnapshotError, match=f"uses dispatch policy '{name}'.*--allow-plugins"):
        Twin.restore(path)
    dispatch.register_policy(name, picky_policy)  # or registered from Python
    assert Twin.restore(path).components["emergency"].policy is picky_policy
    with pytest.raises(InputError, match="not 'package.module:function'"):
        dispatch.allow_plugins(["os.system"])


def test_entry_point_plugins_load_without_allow(small_city, clean_plugins, monkeypatch):
    from importlib.metadata import EntryPoint

    dispatch = clean_plugins
    ep = EntryPoint(name="picky", value=f"{__name__}:picky_policy", group=dispatch.ENTRY_POINT_GROUP)
    monkeypatch.setattr(dispatch, "_entry_points", lambda: {ep.value: ep, ep.name: ep})
    tw = Twin(small_scenario(incidents={**INCIDENTS, "policy": ep.value}), city=small_city)
    assert tw.components["emergency"].policy is picky_policy
    assert dispatch.policy_registry()[ep.value] is picky_policy


def test_twin_run_with_allow_plugins_runs_the_policy(tmp_path, clean_plugins):
    from twin.cli import main

    sc = tmp_path / "plug.yaml"
    sc.write_text(
        "extends: light_day\nname: plug\ntime: {duration: 10min}\n"
        f"incidents: {{policy: '{__name__}:picky_policy', drill: [{{at: '07:01', type: fire, location: 3}}]}}\n"
    )
    assert (
        main(["run", str(sc), "--out", str(tmp_path / "out"), "-q", "--allow-plugins", f"{__name__}:picky_policy"]) == 0
    )
    assert (tmp_path / "out" / "results.nc").exists()


def test_writing_refuses_what_could_not_be_read_back(small_city, tmp_path):
    """A policy set from Python without registering it cannot go into a snapshot (named), and the
    old file stays as it was."""
    tw = Twin(small_scenario(incidents=INCIDENTS), city=small_city)
    tw.run_until("07:05")
    path = tw.snapshot(tmp_path / "now.snap")
    before = path.read_bytes()
    tw.components["emergency"].policy = lambda inc, kind, n, cand: []
    with pytest.raises(SnapshotError, match=r"twin\(Twin\)\['components'\]\['emergency'\].*policy.*not a registered"):
        tw.snapshot(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["now.snap"]


def test_snapshot_benchmark_smoke(tmp_path):
    """benchmarks.snapshot on a tiny metro day: the restored twin runs on identically."""
    from benchmarks.snapshot import run

    row = run(n_trips=3000, until="07:00", repeat=1, out=tmp_path)
    assert row["restored_run_identical"] is True
    assert row["size_ratio"] < 1.2 and row["pickle_bytes"] > 0
