"""Feed ingest benchmark: messages per second through cleansing, replaying the recorded sample day.

::

    python -m benchmarks.ingest                    # the shipped sample day, best of 3
    python -m benchmarks.ingest --repeat 5 --json out.json
    python -m benchmarks.ingest --limit 2000       # a quick smoke run

What is timed is what a twin does with a replayed feed: read the gzipped JSONL, parse each
line, cap its arrival time by the lines after it, cleanse it (schema, identifiers and field
ranges, units, link mapping, duplicates, plausibility, periods, the future check against the
live clock and its quorum of senders, lateness, stuck sensors, dead-lettering rejected
messages to a file) and release the records in time
order, draining every 5 sim minutes through the day. Building the city is not timed.
The pipeline runs on one thread (the hub serialises cleansing), so it needs one core of
the two the target names. Wall time and process CPU time are both reported; on a shared
machine the CPU figure is the steadier one.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

from basics.atomic import write_text

__all__ = ["run_ingest", "main"]

SAMPLE = Path(__file__).resolve().parent.parent / "scenarios" / "library" / "feeds" / "sample_day.yaml"
TARGET_MSG_S = 20_000


def run_ingest(
    scenario_path: str | Path = SAMPLE, *, repeat: int = 3, limit: int | None = None, step_s: float = 300.0
) -> dict:
    """Replay a scenario's recorded feed through a fresh hub ``repeat`` times.

    Returns
    -------
    dict
        ``messages``, per-run ``wall_s``/``cpu_s``, the best ``msg_per_s`` (wall) and
        ``msg_per_s_cpu``, and the counters of the last run.
    """
    from scenarios import load_scenario
    from twin.feeds import FeedHub
    from twin.model import build_city

    scn = load_scenario(scenario_path)
    replays = [s for s in scn.feeds.sources if s.kind == "replay"]
    if not replays:
        raise SystemExit(f"{scenario_path}: the scenario has no replay source to benchmark")
    network = build_city(scn.city).network
    runs = []
    with tempfile.TemporaryDirectory(prefix="ingest-") as tmp:
        if limit is not None:  # the first LIMIT lines of the feed
            src = Path(replays[0].path)
            cut = Path(tmp) / "feed.jsonl.gz"
            with gzip.open(src, "rt", encoding="utf-8") as fin, gzip.open(cut, "wt", encoding="utf-8") as fout:
                for i, line in enumerate(fin):
                    if i >= limit:
                        break
                    fout.write(line)
            scn = load_scenario(scn.resolved(), overrides={"feeds.sources": [{"kind": "replay", "path": str(cut)}]})
        for r in range(repeat):
            hub = FeedHub.from_scenario(scn, network, dead_letter=Path(tmp) / f"dead-{r}.jsonl")
            released = 0
            w0, c0 = time.perf_counter(), time.process_time()
            t = 0.0
            while not hub.exhausted or hub.pending:
                t += step_s
                released += len(hub.drain(t if not hub.exhausted else math.inf, flush=hub.exhausted))
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            hub.stop()
            runs.append(
                {"wall_s": wall, "cpu_s": cpu, "messages": hub.received, "released": released, "counters": hub.totals()}
            )
    n = runs[-1]["messages"]
    return {
        "scenario": str(scenario_path),
        "messages": n,
        "runs": runs,
        "msg_per_s": max(run["messages"] / run["wall_s"] for run in runs),
        "msg_per_s_cpu": max(run["messages"] / max(run["cpu_s"], 1e-9) for run in runs),
        "target_msg_per_s": TARGET_MSG_S,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default=str(SAMPLE), help="scenario with a replay source (default: the sample day)")
    p.add_argument("--repeat", type=int, default=3, help="runs (the best is reported)")
    p.add_argument("--limit", type=int, default=None, help="replay only the first N messages")
    p.add_argument("--json", default=None, help="also write the result here")
    args = p.parse_args(argv)
    res = run_ingest(args.scenario, repeat=max(1, args.repeat), limit=args.limit)
    last = res["runs"][-1]
    c = last["counters"]
    print(f"ingest: {res['messages']:,} messages through cleansing (replay of {Path(res['scenario']).name})")
    for i, run in enumerate(res["runs"], 1):
        print(
            f"  run {i}: {run['wall_s']:.3f} s wall ({run['messages'] / run['wall_s']:,.0f} msg/s), "
            f"{run['cpu_s']:.3f} s CPU ({run['messages'] / max(run['cpu_s'], 1e-9):,.0f} msg/s)"
        )
    print(
        f"  best: {res['msg_per_s']:,.0f} msg/s wall, {res['msg_per_s_cpu']:,.0f} msg/s CPU "
        f"(target {TARGET_MSG_S:,} msg/s)"
    )
    print(
        f"  outcomes: {c['accepted']:,} accepted, {c['rejected']:,} rejected, {c['late']:,} late, "
        f"{c['duplicate']:,} duplicate; {last['released']:,} records released"
    )
    if args.json:
        write_text(args.json, json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
