"""The thread that runs the twin behind ``twin serve``.

One thread owns the twin: it advances the clock against the wall clock
(``speed`` simulated seconds per real second), applies the operators' controls
between steps, and publishes the state (:mod:`twin.serve.picture`) at most
``rate_hz`` times a second, and at once after a control.  Other threads (the web
server's) only read the published state and its delta, which are never changed
after publication, and hand controls over through :meth:`Runner.submit`.

In shadow mode (``live``: a :class:`~twin.serve.live.LiveDriver`) the thread steps
the shadow twin as the feed allows instead, shows the member nearest the ensemble
mean, and adds the feed's counters and the estimate to each publication; controls
that would change the twin are refused there (it follows the feed).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

from basics.clock import format_clock
from twin.serve.controls import ControlError, apply_control
from twin.serve.picture import IncrementalKpis, state_delta, state_payload

__all__ = ["Runner", "OperatorLog"]

log = logging.getLogger(__name__)

#: operator log rows kept in memory (and in the state)
MAX_OPERATOR_ROWS = 10_000
#: forks kept in the state
MAX_FORKS = 5


class OperatorLog:
    """Every control action: sim time, clock, token name, action, outcome."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, twin: Any, who: str, action: str, outcome: str) -> dict[str, Any]:
        """Record one action (and put it into the twin's after-action log too)."""
        row = {
            "time_s": round(twin.now, 3),
            "clock": format_clock(twin.clock_s(), with_seconds=True),
            "who": who,
            "action": action,
            "outcome": outcome[:300],
        }
        self.rows = (self.rows + [row])[-MAX_OPERATOR_ROWS:]
        comp = twin.components.get("emergency")
        if comp is not None:
            comp.log.add(twin.now, "operator", detail=f"{who}: {action}: {outcome[:300]}")
        return row


class Runner:
    """Runs ``twin`` paced against the wall clock and publishes its state.

    Parameters
    ----------
    twin
        A built :class:`~twin.model.Twin`.
    speed
        Simulated seconds per real second.
    rate_hz
        Most state publications a second.
    paused
        Start paused.
    live
        Shadow mode: a :class:`~twin.serve.live.LiveDriver` (``twin`` is then its
        representative member, followed as it changes).
    """

    def __init__(
        self, twin: Any, *, speed: float = 60.0, rate_hz: float = 2.0, paused: bool = False, live: Any = None
    ) -> None:
        self.live = live
        self.twin = live.twin if live is not None else twin
        self.speed = float(speed)
        self.period = 1.0 / rate_hz
        self.paused = paused
        self.closures: dict[int, int] = {}
        self.oplog = OperatorLog()
        self.forks: list[dict[str, Any]] = []
        self._fork_lock = threading.Lock()
        self._controls: queue.Queue[tuple[dict, str, Future]] = queue.Queue(maxsize=100)
        self._notes: queue.Queue[tuple[str, str, str]] = queue.Queue(maxsize=1000)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.seq = 0
        self.kpis = IncrementalKpis()
        comp = self.twin.components.get("emergency")
        self.base_stations = frozenset(s.name for s in comp.stations if not s.removed) if comp is not None else None
        self.state: dict[str, Any] = self._payload()
        self.delta: dict[str, Any] | None = None
        self.cond = threading.Condition()
        self.error: str | None = None
        self.step_cpu_s = 0.0  # simulation time on the CPU (for the benchmark)
        self.publish_cpu_s = 0.0  # building states and deltas
        self.clients = 0  # WebSockets connected (the web server counts them)

    # ------------------------------------------------------------------ state
    def _payload(self) -> dict[str, Any]:
        with self._fork_lock:
            forks = list(self.forks)
        extra = {"operator_log": self.oplog.rows[-50:], "forks": forks, "error": getattr(self, "error", None)}
        if self.live is not None:
            extra["live"] = self.live.state()
        return state_payload(
            self.twin,
            seq=self.seq,
            paused=self.paused,
            speed=self.speed,
            extra=extra,
            base_stations=self.base_stations,
            kpis=self.kpis(self.twin),
        )

    def publish(self) -> None:
        """Build the state now and its delta from the last one; wake the waiting senders."""
        c0 = time.thread_time()
        self.seq += 1
        new = self._payload()
        delta = state_delta(self.state, new)
        self.publish_cpu_s += time.thread_time() - c0
        with self.cond:
            self.state, self.delta = new, delta
            self.cond.notify_all()

    def stats(self) -> dict[str, Any]:
        """The server's own figures: CPU seconds simulating and publishing, clients."""
        return {
            "step_cpu_s": round(self.step_cpu_s, 3),
            "publish_cpu_s": round(self.publish_cpu_s, 3),
            "clients": self.clients,
            "seq": self.seq,
        }

    def snapshot(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The latest state and the delta that led to it (both read only)."""
        with self.cond:
            return self.state, self.delta

    # --------------------------------------------------------------- controls
    def submit(self, ctl: dict[str, Any], who: str) -> Future:
        """Hand a checked control to the runner thread; the future ends with its outcome.

        Raises
        ------
        ControlError
            503 when too many controls wait.
        """
        fut: Future = Future()
        try:
            self._controls.put_nowait((ctl, who, fut))
        except queue.Full:
            raise ControlError(503, "too many controls waiting; try again in a moment") from None
        if self._thread is None:  # not running (tests): apply and publish now
            self._drain()
            self.publish()
        return fut

    def note(self, who: str, action: str, outcome: str) -> None:
        """Log a refused call (a viewer's control) from another thread: the runner
        thread writes it, so the twin's log is only ever written by one thread.
        """
        try:
            self._notes.put_nowait((who, action, outcome))
        except queue.Full:
            return  # a flood of refused calls is not logged one by one
        if self._thread is None:
            self._drain()

    def _drain(self) -> bool:
        done = False
        while True:
            try:
                who, action, outcome = self._notes.get_nowait()
            except queue.Empty:
                break
            self.oplog.add(self.twin, who, action, outcome)
            done = True
        while True:
            try:
                ctl, who, fut = self._controls.get_nowait()
            except queue.Empty:
                return done
            done = True
            try:
                outcome = self._apply(ctl, who)
                self.oplog.add(self.twin, who, ctl["action"], outcome)
                fut.set_result(outcome)
            except ControlError as exc:
                self.oplog.add(self.twin, who, ctl["action"], f"refused: {exc.reason}")
                fut.set_exception(exc)
            except Exception as exc:  # a bug must not stop the run
                log.exception("control %s failed", ctl["action"])
                self.oplog.add(self.twin, who, ctl["action"], f"failed: {type(exc).__name__}")
                fut.set_exception(ControlError(500, f"{ctl['action']} failed: {type(exc).__name__}: {exc}"[:300]))

    def _apply(self, ctl: dict[str, Any], who: str) -> str:
        action = ctl["action"]
        if action == "pause":
            self.paused = True
            return "paused"
        if action == "resume":
            self.paused = False
            if self.live is not None:
                self.live.repace()
            return "resumed"
        if action == "speed":
            self.speed = ctl["value"]
            if self.live is not None:
                self.live.repace(self.speed)
            return f"speed {self.speed:g}x"
        if action == "fork":
            return self._fork(ctl, who)
        if self.live is not None:
            raise ControlError(409, f"{action}: in shadow mode the twin follows the feed; fork a what-if instead")
        return apply_control(self.twin, ctl, closures=self.closures, who=who)

    def _fork(self, ctl: dict[str, Any], who: str) -> str:
        """Run "no action" and the what-if from now, in a background thread."""
        from experiments.executor import Executor
        from twin.live.fork import Variant, fork
        from twin.snapshot import snapshot_bytes

        with self._fork_lock:
            if any(f["status"] == "running" for f in self.forks):
                raise ControlError(409, "fork: one is already running")
        data = snapshot_bytes(self.twin)
        links = ctl["close_links"]
        variants = []
        if links:
            variants.append(
                Variant(name=f"close {len(links)} link(s)", interventions=[{"kind": "close", "links": links, "at": 0}])
            )
        entry: dict[str, Any] = {
            "id": len(self.forks) + 1,
            "who": who,
            "from": format_clock(self.twin.clock_s(), with_seconds=False),
            "hours": ctl["hours"],
            "status": "running",
            "results": [],
        }
        with self._fork_lock:
            self.forks = (self.forks + [entry])[-MAX_FORKS:]

        def work() -> None:
            try:
                ex = Executor(serial=True)
                try:
                    res = fork(data, variants, horizon_s=ctl["hours"] * 3600.0, executor=ex)
                finally:
                    ex.close()
                out = [{"name": r.name, "kpis": {k: _round(v) for k, v in r.kpis.items()}} for r in res]
                new = dict(entry, status="done", results=out)
            except Exception as exc:  # reported on the page
                log.exception("fork failed")
                new = dict(entry, status=f"failed: {type(exc).__name__}: {exc}"[:300])
            with self._fork_lock:
                self.forks = [new if f["id"] == entry["id"] else f for f in self.forks]

        threading.Thread(target=work, name="twin-serve-fork", daemon=True).start()
        return f"fork {entry['id']}: {ctl['hours']:g} h" + (f", closing {len(links)} link(s)" if links else "")

    # ------------------------------------------------------------------- loop
    def start(self) -> None:
        """Start the runner thread."""
        self._thread = threading.Thread(target=self._loop, name="twin-serve-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the runner thread (the twin stays where it is)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        tw = self.twin
        last_pub = time.perf_counter()
        last = last_pub
        while not self._stop.is_set():
            now = time.perf_counter()
            changed = self._drain()
            if self.live is not None:
                changed |= self._step_live()
            elif not self.paused and tw.now < tw.duration_s:
                target = min(tw.now + (now - last) * self.speed, tw.duration_s)
                c0 = time.thread_time()
                try:
                    tw.run_until(target)
                except Exception as exc:  # the page says so; the server stays up
                    log.exception("the twin stopped")
                    self.error = f"the twin stopped at {tw.now:.0f} s: {type(exc).__name__}: {exc}"[:300]
                    self.paused = True
                self.step_cpu_s += time.thread_time() - c0
            last = now
            if changed or now - last_pub >= self.period:
                self.publish()
                # on the rate's grid (a late publication does not push the next one back),
                # unless more than a period behind
                last_pub = now if changed or now - last_pub >= 2 * self.period else last_pub + self.period
            self._stop.wait(min(0.05, max(0.001, last_pub + self.period - time.perf_counter())))

    def _step_live(self) -> bool:
        """One step of the shadow twin if the feed allows; whether it ran."""
        if self.paused or self.live.finished:
            return False
        c0 = time.thread_time()
        try:
            ran = self.live.step()
        except Exception as exc:  # the page says so; the server stays up
            log.exception("the shadow twin stopped")
            self.error = f"the shadow twin stopped at {self.twin.now:.0f} s: {type(exc).__name__}: {exc}"[:300]
            self.paused = True
            ran = False
        self.step_cpu_s += time.thread_time() - c0
        self.twin = self.live.twin
        return ran


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 3) if v == v and abs(v) != float("inf") else None
    return v
