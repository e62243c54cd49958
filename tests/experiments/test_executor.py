"""The executor: Dask worker processes and the serial fallback behave alike."""

from __future__ import annotations

import os

import pytest

from basics.errors import InputError
from experiments.executor import Executor


def _where(x, *, scale=1):
    return os.getpid(), x * scale


def _fail_on(x, bad):
    if x == bad:
        raise InputError(f"entry {x} is bad")
    return x


def test_local_cluster_runs_in_two_other_processes_in_order(cluster):
    assert cluster.kind == "local" and cluster.n_workers == 2
    out = cluster.map(_where, [(i,) for i in range(8)], scale=3)
    assert [v for _, v in out] == [3 * i for i in range(8)]
    pids = {p for p, _ in out}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def _numba_threads():
    import numba

    return numba.get_num_threads()


def test_cluster_workers_run_numba_single_threaded(cluster):
    # one worker per core: parallel kernels must not start a thread per core in each
    assert cluster.map(_numba_threads, [(), ()]) == [1, 1]


def test_serial_runs_here_in_order():
    seen = []
    with Executor(workers=0) as ex:
        assert ex.kind == "serial" and ex.n_workers == 1 and ex.client is None
        out = ex.map(_where, [(i,) for i in range(4)], scale=2, progress=lambda d, n: seen.append((d, n)))
    assert out == [(os.getpid(), 2 * i) for i in range(4)]
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


@pytest.mark.parametrize("mode", ["serial", "cluster"])
def test_first_failure_raises_its_own_type(mode, cluster):
    ex = cluster if mode == "cluster" else Executor(serial=True)
    with pytest.raises(InputError, match="entry 3 is bad"):
        ex.map(_fail_on, [(i,) for i in range(6)], bad=3)
    assert ex.map(_fail_on, [(1,), (2,)], bad=3) == [1, 2]  # still usable afterwards


def test_as_completed_yields_every_index_once(cluster):
    got = dict(cluster.as_completed(_where, [(i,) for i in range(5)]))
    assert sorted(got) == list(range(5)) and [got[i][1] for i in range(5)] == list(range(5))


def test_bad_arguments_and_unreachable_scheduler():
    with pytest.raises(ValueError, match="workers must be 0"):
        Executor(workers=-1)
    with pytest.raises(ConnectionError, match="127.0.0.1:9.*--scheduler"):
        Executor(scheduler="tcp://127.0.0.1:9", connect_timeout=1)
