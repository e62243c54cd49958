"""Resumable comparisons (issue 15 part 5): each run kept as it lands; re-running resumes;
a killed comparison loses at most the runs in flight; the resumed result equals an uninterrupted one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

import experiments.compare as cmp
from experiments.compare import checkpoint_for, compare
from experiments.executor import Executor
from tests.experiments.conftest import tiny

CLOSE = tiny(name="closed", interventions=[{"kind": "close", "place": "Old Bridge", "at": "07:05", "until": "07:25"}])
TIMING = {"wall_s", "runs_wall_s", "run_s", "startup_s", "workers"}


class Killed(BaseException):
    """Stands for kill -9 arriving after some runs landed."""


def _same(a: cmp.Comparison, b: cmp.Comparison) -> None:
    sa = {k: v for k, v in a.summary.items() if k not in TIMING}
    sb = {k: v for k, v in b.summary.items() if k not in TIMING}
    assert json.dumps(sa, sort_keys=True, default=str) == json.dumps(sb, sort_keys=True, default=str)
    xr.testing.assert_identical(a.dataset, b.dataset)
    for name in a.dataset.variables:
        np.testing.assert_array_equal(a.dataset[name].values, b.dataset[name].values, err_msg=name)
    assert a.run_files.keys() == b.run_files.keys()
    for v in a.run_files:
        assert sorted(a.run_files[v]) == sorted(b.run_files[v])
        assert a.run_files[v]["scenario.yaml"] == b.run_files[v]["scenario.yaml"]


@pytest.fixture(scope="module")
def whole():
    with Executor(serial=True) as ex:
        return compare(tiny(), CLOSE, replications=3, executor=ex)


def test_a_killed_comparison_resumes_where_it_stopped_and_equals_the_whole(whole, tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    ran: list[tuple[str, int]] = []
    real = cmp.run_replication

    def counting(scenario, seed, *, variant, index, **kw):
        if len(ran) == 4:
            raise Killed  # the fifth run is in flight when the process dies
        ran.append((variant, index))
        return real(scenario, seed, variant=variant, index=index, **kw)

    monkeypatch.setattr(cmp, "run_replication", counting)
    with Executor(serial=True) as ex, pytest.raises(Killed):
        compare(tiny(), CLOSE, replications=3, executor=ex, out=out)
    ckpt = checkpoint_for(out)
    assert not out.exists()
    assert sorted(p.name for p in ckpt.glob("*.rep")) == sorted(f"{v}-{i}.rep" for v, i in ran)  # nothing lost
    first = list(ran)
    ran.clear()
    seen = []
    with Executor(serial=True) as ex:
        again = compare(
            tiny(), CLOSE, replications=3, executor=ex, out=out, progress=lambda done, total: seen.append((done, total))
        )
    every = {(v, i) for v in ("baseline", "scenario") for i in range(3)}
    assert sorted(ran) == sorted(every - set(first))  # only the runs not kept before
    assert seen[0] == (4, 6) and seen[-1] == (6, 6)
    _same(whole, again)
    assert (out / "summary.json").exists() and not ckpt.exists()  # the checkpoint goes once the folder is written
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["seeds"] == whole.summary["seeds"]


def test_resume_on_a_dask_cluster_and_a_damaged_run_file_runs_again(whole, tmp_path, cluster):
    ckpt = tmp_path / "ckpt"
    first = compare(tiny(), CLOSE, replications=3, executor=cluster, checkpoint=ckpt)
    _same(whole, first)
    files = sorted(ckpt.glob("*.rep"))
    assert len(files) == 6
    data = bytearray(files[0].read_bytes())
    data[-10] ^= 0xFF  # a damaged run file is not used: it runs again
    files[0].write_bytes(bytes(data))
    files[1].unlink()
    again = compare(tiny(), CLOSE, replications=3, executor=cluster, checkpoint=ckpt)
    _same(whole, again)


def test_a_checkpoint_of_another_comparison_is_not_used(tmp_path):
    ckpt = tmp_path / "ckpt"
    with Executor(serial=True) as ex:
        compare(tiny(), CLOSE, replications=2, executor=ex, checkpoint=ckpt)
        key = json.loads((ckpt / "key.json").read_text())
        other = compare(tiny(), CLOSE, replications=2, seed=11, executor=ex, checkpoint=ckpt)
    assert other.summary["seeds"] == [11, 12]
    assert json.loads((ckpt / "key.json").read_text())["seeds"] == [11, 12] != key["seeds"]
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("not a checkpoint")
    with Executor(serial=True) as ex, pytest.raises(cmp.ComparisonError, match="not a comparison checkpoint"):
        compare(tiny(), CLOSE, replications=2, executor=ex, checkpoint=stranger)
    assert (stranger / "notes.txt").exists()


def test_a_checkpoint_run_file_holding_an_object_is_refused(tmp_path):
    """Checkpoint files are plain records: a file naming a class is not used (and runs nothing)."""
    import hashlib

    from twin.snapshot import SnapshotError, records_from_bytes

    body_manifest = json.dumps({"root": {"o": "twin.model:Twin", "i": 0, "s": None}}).encode()
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("manifest.json", body_manifest)
    body = buf.getvalue()
    line = json.dumps(
        {"format": "city-twin-records", "version": 1, "kind": "comparison replication", "body_bytes": len(body)}
    ).encode()
    data = line + b"\n" + b"sha256:" + hashlib.sha256(line + b"\n" + body).hexdigest().encode() + b"\n" + body
    with pytest.raises(SnapshotError, match="plain data only"):
        records_from_bytes(data, kind="comparison replication", what="x.rep")


def test_twin_compare_resumes_after_a_kill(tmp_path, monkeypatch, capsys):
    import yaml

    from twin.cli import main

    base, scen = tmp_path / "base.yaml", tmp_path / "closed.yaml"
    base.write_text(yaml.safe_dump(tiny()))
    scen.write_text(yaml.safe_dump(CLOSE))
    out = tmp_path / "cmp"
    ran: list = []
    real = cmp.run_replication
    kill_after = [3]

    def counting(scenario, seed, *, variant, index, **kw):
        if len(ran) == kill_after[0]:
            raise Killed
        ran.append((variant, index))
        return real(scenario, seed, variant=variant, index=index, **kw)

    monkeypatch.setattr(cmp, "run_replication", counting)
    argv = ["compare", str(base), str(scen), "-n", "2", "--workers", "0", "--out", str(out), "-q"]
    with pytest.raises(Killed):
        main(argv)
    assert len(list(checkpoint_for(out).glob("*.rep"))) == 3
    ran.clear()
    assert main(argv) == 0
    assert len(ran) == 1 and "resuming: 3 finished run(s)" in capsys.readouterr().out
    assert (out / "comparison.nc").exists() and not checkpoint_for(out).exists()
    ran.clear()
    kill_after[0] = 99
    assert main(argv + ["--restart"]) == 0 and len(ran) == 4
