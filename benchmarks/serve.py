"""Benchmark of ``twin serve``: the live operations picture under load (issue 16).

::

    python -m benchmarks.serve                  # 20,000 links, 500 units, 3 browsers, 60 s
    python -m benchmarks.serve --small          # 2,000 links, 50 units, 3 browsers, 15 s

A synthetic city of about ``--links`` links, ``--units`` units at stations spread
over it and random calls keeping them busy, served by ``twin serve`` in its own
process (numba on one thread, so the runner thread's CPU time is all of the
simulation's) at 2 state updates a second, watched by ``--clients`` headless
chromium pages (Playwright; Debian's chromium).  Measured:

- **first page load**: from navigation until the page has drawn the map and
  applied the first state (target: under 2 s on localhost);
- **server CPU beyond the simulation**: the server process's CPU time less the
  runner thread's simulation time, over the wall time, in % of one core (target:
  under 30 %); with the publishing part (building states and deltas) apart;
- **updates**: states each browser applied per second (target: 2);
- the machine's 1-minute load average before and after (the figures are only
  comparable within one run on a shared machine).

Results go to ``OUT/serve.json`` (default ``benchmarks/out``), written atomically.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

__all__ = ["main", "scenario_text"]

ROOT = Path(__file__).resolve().parent.parent


def scenario_text(*, links: int, units: int, seed: int = 1) -> str:
    """A drill scenario on a synthetic grid of about ``links`` links with ``units`` units."""
    blocks = max(4, round(math.sqrt(links / 4.1)))
    n_stations = max(1, units // 10)
    per = max(1, units // n_stations)
    side = blocks + 1
    k = max(1, round(math.sqrt(n_stations)))
    stations = []
    for i in range(n_stations):
        gx, gy = i % k, i // k
        node = min(side - 1, int((gx + 0.5) * side / k)) + side * min(side - 1, int((gy + 0.5) * side / k))
        e, a = max(1, per * 4 // 10), max(1, per * 3 // 10)
        mix = f"{{engine: {e}, ladder: 1, ambulance: {a}, police: {max(1, per - e - a - 1)}}}"
        stations.append(f"    - {{name: S{i}, kind: fire, node: {node}, units: {mix}}}")
    return (
        f"name: serve_bench\nseed: {seed}\n"
        'time: {start: "07:00", duration: 6h, step: 2s}\n'
        f"city: {{synthetic: {{blocks_x: {blocks}, blocks_y: {blocks}, zone_blocks: 5}}}}\n"
        f"demand: {{gravity: {{total_trips: {blocks * blocks * 20}}}}}\n"
        "outputs: {interval: 15min}\n"
        "incidents:\n"
        "  rates:\n"
        f"    fire: {{per_hour: {max(2, units // 5)}}}\n"
        f"    medical: {{per_hour: {max(4, units // 2)}}}\n"
        "resources:\n  stations:\n" + "\n".join(stations) + "\n"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 (localhost)
        return json.loads(r.read())


def _start_server(scenario: Path, port: int, speed: float) -> subprocess.Popen:
    env = dict(os.environ, NUMBA_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "twin.cli", "serve", str(scenario), "--port", str(port), "--speed", str(speed)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"twin serve ended: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            _get(f"http://127.0.0.1:{port}/api/state")
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("twin serve did not start within 10 minutes")


def _measure(port: int, proc: subprocess.Popen, *, clients: int, seconds: float) -> dict:
    import psutil
    from playwright.sync_api import sync_playwright

    url = f"http://127.0.0.1:{port}/"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    ps = psutil.Process(proc.pid)
    out: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            pages, loads = [], []
            for _ in range(clients):
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                t0 = time.perf_counter()
                page.goto(url)
                while not page.evaluate(
                    "Number(document.body.dataset.seq || 0) > 0 && !!document.getElementById('map').dataset.drawn"
                ):
                    page.wait_for_timeout(20)
                loads.append(time.perf_counter() - t0)
                pages.append(page)
            load0 = os.getloadavg()
            s0, c0, w0 = _get(url + "api/state")["server"], ps.cpu_times(), time.perf_counter()
            seq0 = [int(pg.evaluate("document.body.dataset.seq")) for pg in pages]
            pages[0].wait_for_timeout(seconds * 1000)
            seq1 = [int(pg.evaluate("document.body.dataset.seq")) for pg in pages]
            s1, c1, w1 = _get(url + "api/state")["server"], ps.cpu_times(), time.perf_counter()
        finally:
            browser.close()
    wall = w1 - w0
    cpu = (c1.user + c1.system) - (c0.user + c0.system)
    sim = s1["step_cpu_s"] - s0["step_cpu_s"]
    out["first_page_load_s"] = [round(x, 3) for x in loads]
    out["wall_s"] = round(wall, 2)
    out["server_cpu_pct_of_one_core"] = round(100 * cpu / wall, 1)
    out["simulation_cpu_pct"] = round(100 * sim / wall, 1)
    out["server_cpu_beyond_simulation_pct"] = round(100 * (cpu - sim) / wall, 1)
    out["publishing_cpu_pct"] = round(100 * (s1["publish_cpu_s"] - s0["publish_cpu_s"]) / wall, 1)
    out["updates_per_s_per_client"] = [round((b - a) / wall, 2) for a, b in zip(seq0, seq1, strict=True)]
    out["clients_connected"] = s1["clients"]
    # the machine's load average (1 min) before and after the measurement: on a shared
    # machine the figures only compare within one run
    out["load_average_1min"] = [round(load0[0], 2), round(os.getloadavg()[0], 2)]
    out["cpus"] = os.cpu_count()
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print and write ``serve.json``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--links", type=int, default=20_000)
    ap.add_argument("--units", type=int, default=500)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--speed", type=float, default=30.0, help="simulated seconds per real second")
    ap.add_argument("--small", action="store_true", help="2,000 links, 50 units, 15 s")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    args = ap.parse_args(argv)
    if args.small:
        args.links, args.units, args.seconds = 2_000, 50, 15.0
    from basics.atomic import write_text

    with tempfile.TemporaryDirectory() as tmp:
        scen = Path(tmp) / "serve_bench.yaml"
        scen.write_text(scenario_text(links=args.links, units=args.units))
        port = _free_port()
        t0 = time.perf_counter()
        proc = _start_server(scen, port, args.speed)
        start_s = time.perf_counter() - t0
        try:
            m = _get(f"http://127.0.0.1:{port}/api/map")
            st = _get(f"http://127.0.0.1:{port}/api/state")
            res = {"links": m["n_links"], "units": len(st.get("units", {})), "server_start_s": round(start_s, 1)}
            res.update(_measure(port, proc, clients=args.clients, seconds=args.seconds))
        finally:
            proc.terminate()
            proc.wait(30)
    res["settings"] = {k: getattr(args, k) for k in ("clients", "seconds", "speed")}
    print(json.dumps(res, indent=2))
    write_text(Path(args.out) / "serve.json", json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
