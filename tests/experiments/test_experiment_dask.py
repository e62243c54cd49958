"""A real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1; one killed mid-run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from experiments.executor import Executor
from experiments.runner import run_experiment
from experiments.store import DONE, open_results

ROOT = Path(__file__).resolve().parents[2]
SPEC = {
    "name": "noisy_cluster",
    "function": "tests.experiments.ishigami:noisy",
    "factors": [{"name": "x", "levels": [1, 2, 3, 4, 5, 6]}],
    "replications": 3,
    "seed": 9,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dask(*args: str, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "distributed.cli.dask_" + args[0], *args[1:]]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def cluster():
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EXPERIMENT_TEST_SLEEP": "0.4", "NUMBA_NUM_THREADS": "1"}
    address = f"tcp://127.0.0.1:{port}"
    procs = [_dask("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard", env=env)]
    common = ("--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard", "--no-nanny")
    procs += [_dask("worker", address, *common, env=env) for _ in range(2)]
    try:
        yield address, procs[1]
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


def test_killing_a_worker_loses_no_result_and_duplicates_none(tmp_path, cluster):
    address, victim = cluster
    deadline = time.monotonic() + 60
    with Executor(scheduler=address, connect_timeout=30) as ex:
        while ex.n_workers < 2 and time.monotonic() < deadline:  # both workers in
            time.sleep(0.2)
        assert ex.n_workers == 2
        done_count: list[int] = []
        at_kill: list[int] = []

        def kill() -> None:
            at_kill.append(len(done_count))
            victim.send_signal(signal.SIGKILL)

        def progress(finished, failed, total):
            done_count.append(finished)

        killer = threading.Timer(1.5, kill)  # mid-run: 18 runs of 0.4 s
        killer.start()
        res = run_experiment(SPEC, tmp_path / "c.zarr", executor=ex, progress=progress)
        killer.join()
    assert victim.poll() is not None and at_kill[0] < 18  # the worker died mid-run
    assert res.done == 18 and res.failed == 0
    assert done_count == list(range(1, 19))  # each run reported once
    ds = open_results(tmp_path / "c.zarr")
    assert (ds["status"].values == DONE).all()
    serial = run_experiment(SPEC, tmp_path / "s.zarr", workers=0)
    assert serial.done == 18
    np.testing.assert_array_equal(ds["y"].values, open_results(tmp_path / "s.zarr")["y"].values)
