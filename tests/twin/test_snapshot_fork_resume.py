"""Forks keep each finished run as it lands; the same fork again resumes (issue 15 part 5)."""

from __future__ import annotations

import json

import pytest

import twin.live.fork as tf
from basics.errors import InputError
from experiments.executor import Executor
from tests.twin.conftest import small_scenario
from twin.model import Twin


class Killed(BaseException):
    """Stands for kill -9 arriving after some runs landed."""


@pytest.fixture(scope="module")
def snap(small_city, tmp_path_factory):
    tw = Twin(small_scenario(), city=small_city)
    tw.run_until("07:20")
    return tw.snapshot(tmp_path_factory.mktemp("fork") / "now.snap")


def _variants(tmp_path):
    (tmp_path / "close.yaml").write_text(
        "name: close\ninterventions:\n  - {kind: close, place: Old Bridge, at: 0, until: 20min}\n"
    )
    (tmp_path / "demand.yaml").write_text(
        "name: more\ninterventions:\n  - {kind: demand, scale: 1.4, at: 0, until: 20min}\n"
    )
    return [tf.load_variant(tmp_path / "close.yaml"), tf.load_variant(tmp_path / "demand.yaml")]


def test_a_killed_fork_resumes_and_equals_the_whole(snap, tmp_path, monkeypatch):
    variants = _variants(tmp_path)
    with Executor(serial=True) as ex:
        whole = tf.fork(snap, variants, horizon_s=1200.0, executor=ex)
    ran = []
    real = tf.run_fork
    limit = [2]

    def counting(data, variant, *a):
        if len(ran) == limit[0]:
            raise Killed
        ran.append(variant.name)
        return real(data, variant, *a)

    monkeypatch.setattr(tf, "run_fork", counting)
    ckpt = tmp_path / "ckpt"
    with Executor(serial=True) as ex, pytest.raises(Killed):
        tf.fork(snap, variants, horizon_s=1200.0, executor=ex, checkpoint=ckpt)
    assert sorted(p.name for p in ckpt.glob("*.rep")) == ["run0.rep", "run1.rep"]
    ran.clear()
    with Executor(serial=True) as ex:
        again = tf.fork(snap, variants, horizon_s=1200.0, executor=ex, checkpoint=ckpt)
    assert ran == ["more"]  # only the run that was in flight
    assert [r.name for r in again] == [r.name for r in whole]
    assert [r.kpis for r in again] == [r.kpis for r in whole]
    assert [(r.sim_from_s, r.sim_to_s) for r in again] == [(r.sim_from_s, r.sim_to_s) for r in whole]
    # another horizon is another fork: its runs are not taken
    ran.clear()
    limit[0] = 99
    with Executor(serial=True) as ex:
        tf.fork(snap, variants, horizon_s=600.0, executor=ex, checkpoint=ckpt)
    assert len(ran) == 3


def test_twin_fork_out_resumes(snap, tmp_path, monkeypatch, capsys):
    from twin.cli import main

    _variants(tmp_path)
    out = tmp_path / "forks.json"
    argv = [
        "fork",
        str(snap),
        "--scenario",
        str(tmp_path / "close.yaml"),
        "--variants",
        str(tmp_path / "demand.yaml"),
        "--horizon",
        "10min",
        "--workers",
        "0",
        "--out",
        str(out),
    ]
    ran = []
    real = tf.run_fork
    limit = [1]

    def counting(data, variant, *a):
        if len(ran) == limit[0]:
            raise Killed
        ran.append(variant.name)
        return real(data, variant, *a)

    monkeypatch.setattr(tf, "run_fork", counting)
    with pytest.raises(Killed):
        main(argv)
    ran.clear()
    limit[0] = 99
    assert main(argv) == 0 and len(ran) == 2
    doc = json.loads(out.read_text())
    assert [r["name"] for r in doc["runs"]] == ["no action", "close", "more"]
    assert not (tmp_path / ".forks.json.forks").exists()


def test_a_folder_that_is_not_a_fork_checkpoint_is_refused(snap, tmp_path):
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "x.txt").write_text("mine")
    with Executor(serial=True) as ex, pytest.raises(InputError, match="not a fork checkpoint"):
        tf.fork(snap, [], horizon_s=60.0, executor=ex, checkpoint=odd)
    assert (odd / "x.txt").exists()
