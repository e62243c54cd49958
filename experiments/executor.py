"""One executor for independent runs: Dask distributed, or serial in this process.

Every batch in the project -- a comparison's replications, a sweep's design points,
later the forks of a snapshot -- hands its runs to an :class:`Executor`:

- by default a :class:`distributed.LocalCluster` of worker *processes* (one thread
  each, so each numba-bound run has a core to itself), sized to the cores;
- ``scheduler="tcp://HOST:PORT"`` uses a cluster that is already running (its workers
  need this project importable; start them with ``--nthreads 1`` and
  ``NUMBA_NUM_THREADS=1`` so parallel kernels do not oversubscribe the cores);
- ``serial=True`` (or ``workers=0``) runs each task in this process, one after the
  other, without Dask: for tests, debugging and profiling.

Tasks are a module-level function and pickle-safe arguments; results come back in
submission order (:meth:`Executor.map`) or as they finish (:meth:`Executor.as_completed`).
The first task that fails cancels the rest and its exception is raised here, with its
own type where it survived the trip back (input errors do).

Examples
--------
>>> with Executor(workers=2) as ex:                    # doctest: +SKIP
...     squares = ex.map(pow, [(2, 2), (3, 2)])
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from basics.errors import InputError

__all__ = ["Executor", "default_workers"]

log = logging.getLogger(__name__)


def _quiet_dask(*, closing: bool = False) -> int:
    """Keep Dask's own logging below WARNING out of the terminal (unless this program logs INFO).

    Importing ``distributed`` sets its loggers to INFO, so a local cluster's start and
    stop would print some 40 lines; while closing, even its warnings and the
    connection-closed errors of workers going away are only noise.  Returns the level
    the ``distributed`` logger had.
    """
    logger = logging.getLogger("distributed")
    before = logger.level
    if logging.getLogger().getEffectiveLevel() > logging.INFO:  # not verbose
        logger.setLevel(logging.CRITICAL if closing else logging.WARNING)
    return before


def default_workers() -> int:
    """The cores this process may use (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Executor:
    """Runs independent tasks on Dask workers or serially (see the module docstring).

    Parameters
    ----------
    scheduler : str, optional
        Address of a running Dask scheduler (``"tcp://10.0.0.5:8786"``). Default: start a
        :class:`~distributed.LocalCluster` and close it with the executor.
    workers : int, optional
        Worker processes of the local cluster (default: the cores of this machine);
        ``0`` means serial. Ignored with ``scheduler``.
    serial : bool, optional
        Run tasks in this process one after the other, no Dask (default False).
    threads_per_worker : int, optional
        Threads of each local worker process (default 1: runs are CPU-bound).
    client : distributed.Client, optional
        Use this client (not closed by the executor); overrides the other options.
    connect_timeout : float, optional
        Seconds to wait for ``scheduler`` to answer (default 20).

    Attributes
    ----------
    kind : {"serial", "local", "remote"}
        Where tasks run.
    start_s : float
        Seconds it took to start the cluster or connect to it (0 for serial).
    """

    def __init__(
        self,
        *,
        scheduler: str | None = None,
        workers: int | None = None,
        serial: bool = False,
        threads_per_worker: int = 1,
        client: Any = None,
        connect_timeout: float = 20.0,
    ) -> None:
        if workers is not None and workers < 0:
            raise InputError(f"workers must be 0 (serial) or more, got {workers}")
        self._cluster = None
        self._client = None
        self._own_client = False
        self.start_s = 0.0
        t0 = time.perf_counter()
        if client is not None:
            self.kind = "remote" if getattr(client, "cluster", None) is None else "local"
            self._client = client
        elif serial or (workers == 0 and scheduler is None):
            self.kind = "serial"
        else:
            from distributed import Client

            _quiet_dask()  # before the cluster starts: its start-up chatter is INFO

            if scheduler is not None:
                self.kind = "remote"
                try:
                    self._client = Client(scheduler, timeout=f"{connect_timeout}s")
                except (OSError, TimeoutError) as exc:
                    raise ConnectionError(
                        f"cannot reach the Dask scheduler at {scheduler!r}: {exc}; start one with "
                        "`dask scheduler` (and `dask worker ADDRESS` on each machine), or leave "
                        "--scheduler out to use a local cluster"
                    ) from None
            else:
                from distributed import LocalCluster

                self.kind = "local"
                n = workers if workers is not None else default_workers()
                # numba's parallel kernels would start a thread per core in every worker:
                # with one worker per core that oversubscribes the machine several times over
                threads = str(threads_per_worker)
                self._cluster = LocalCluster(
                    n_workers=n,
                    threads_per_worker=threads_per_worker,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.CRITICAL,
                    env={"NUMBA_NUM_THREADS": threads, "OMP_NUM_THREADS": threads},
                )
                self._client = Client(self._cluster)
            self._own_client = True
        self.start_s = time.perf_counter() - t0
        log.info("executor: %s with %d slot(s), started in %.1f s", self.kind, self.n_workers, self.start_s)

    # ------------------------------------------------------------------ info
    @property
    def client(self):
        """The Dask client, or ``None`` when serial."""
        return self._client

    @property
    def n_workers(self) -> int:
        """Tasks that can run at once: the workers' threads in total (1 when serial)."""
        if self._client is None:
            return 1
        return max(1, sum(int(n) for n in self._client.nthreads().values()))

    def __repr__(self) -> str:
        return f"Executor(kind={self.kind!r}, slots={self.n_workers})"

    # ------------------------------------------------------------------ running
    def as_completed(
        self, func: Callable[..., Any], items: Iterable[Sequence[Any]], **kwargs: Any
    ) -> Iterator[tuple[int, Any]]:
        """Run ``func(*item, **kwargs)`` for each item; yield ``(index, result)`` as each ends.

        Parameters
        ----------
        func : callable
            A module-level function (it is pickled by reference).
        items : iterable of tuple
            Positional arguments of each task, pickle-safe.
        **kwargs
            Keyword arguments shared by every task.

        Yields
        ------
        (int, object)
            The task's position in ``items`` and its result, in order of completion
            (submission order when serial).

        Raises
        ------
        Exception
            The first failure; the tasks not yet finished are cancelled.
        """
        items = [tuple(item) for item in items]
        if self._client is None:
            for i, item in enumerate(items):
                yield i, func(*item, **kwargs)
            return
        from distributed import as_completed

        with warnings.catch_warnings():  # a snapshot is a large argument by design: no "large graph" warning
            warnings.filterwarnings("ignore", message=".*[Ll]arge graph.*")
            futures = [self._client.submit(func, *item, pure=False, **kwargs) for item in items]
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for fut in as_completed(futures):
                if fut.status == "error":
                    exc = fut.exception()
                    raise exc.with_traceback(fut.traceback())
                yield index[fut.key], fut.result()
        finally:
            pending = [f for f in futures if not f.done()]
            if pending:
                self._client.cancel(pending)

    def map(
        self,
        func: Callable[..., Any],
        items: Iterable[Sequence[Any]],
        *,
        progress: Callable[[int, int], None] | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        """Run ``func(*item, **kwargs)`` for each item; results in the order of ``items``.

        Parameters
        ----------
        func, items, **kwargs
            As for :meth:`as_completed`.
        progress : callable, optional
            Called with ``(done, total)`` after each task ends.

        Returns
        -------
        list
            One result per item.
        """
        items = [tuple(item) for item in items]
        out: list[Any] = [None] * len(items)
        for done, (i, result) in enumerate(self.as_completed(func, items, **kwargs), start=1):
            out[i] = result
            if progress is not None:
                progress(done, len(items))
        return out

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Close the client and the local cluster this executor started (idempotent)."""
        quiet = _quiet_dask(closing=True) if self._client is not None else None
        try:
            if self._own_client and self._client is not None:
                self._client.close()
            if self._cluster is not None:
                self._cluster.close()
        finally:
            if quiet is not None:
                logging.getLogger("distributed").setLevel(quiet)
        self._client = None if self._own_client else self._client
        self._cluster = None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
