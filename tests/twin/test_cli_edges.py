"""The command line's rough edges (issue 14, part 4) and nothing clobbered (issue 15, part 3).

Each test fails on the code before these fixes: run folders replaced whatever was there,
scenario files could send results anywhere, partial runs overwrote finished ones, a full
disk segfaulted, built-ins were not found by their file name, and so on.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from basics.atomic import MARKER, clean_leftovers, read_marker
from tests.twin.conftest import SMALL
from twin.cli import main

SHORT = dict(SMALL, time={"start": "07:00", "duration": "20min", "step": "2s"})


def _write(folder: Path, doc: dict, name: str = "s.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(doc))
    return path


def _error_of(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return " ".join(err.split())


# ------------------------------------------------------------------------ help


def _commands() -> list[list[str]]:
    from twin.cli.app import _parser

    parser = _parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    out = [[]]
    for name, p in sub.choices.items():
        out.append([name])
        for action in p._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                out += [[name, child] for child in action.choices]
    return out


def test_every_command_has_working_help(capsys):
    commands = _commands()
    assert ["compare"] in commands and ["city", "info"] in commands and len(commands) >= 11
    for cmd in commands:
        with pytest.raises(SystemExit) as exc:
            main([*cmd, "--help"])
        assert exc.value.code == 0, cmd
        out = capsys.readouterr().out
        assert out.startswith("usage: twin") and "Traceback" not in out, cmd


# ------------------------------------------------------------- folders: ours only


def test_folder_the_twin_did_not_write_is_never_replaced(tmp_path, capsys):
    src = tmp_path / "project"
    src.mkdir()
    (src / "model.py").write_text("print('my code')\n")
    scen = _write(tmp_path, SHORT)
    for extra in ([], ["--overwrite"]):
        err = _error_of(capsys, ["run", str(scen), "--out", str(src), "-q", *extra])
        assert "project" in err and MARKER in err and "never replaced" in err
    assert sorted(p.name for p in src.iterdir()) == ["model.py"]
    assert (src / "model.py").read_text() == "print('my code')\n"


def test_finished_run_replaced_only_with_overwrite(tmp_path, capsys):
    scen = _write(tmp_path, SHORT)
    out = tmp_path / "run"
    assert main(["run", str(scen), "--out", str(out), "-q"]) == 0
    marker = read_marker(out)
    assert marker["finished"] is True and marker["scenario"] == "small" and marker["seed"] == 3
    before = (out / "summary.json").read_bytes()
    err = _error_of(capsys, ["run", str(scen), "--out", str(out), "-q", "--seed", "4"])
    assert "finished run" in err and "--overwrite" in err and "--out" in err
    assert (out / "summary.json").read_bytes() == before
    assert main(["run", str(scen), "--out", str(out), "-q", "--seed", "4", "--overwrite"]) == 0
    assert json.loads((out / "summary.json").read_text())["seed"] == 4


def test_partial_run_gets_its_own_folder_and_never_replaces_the_full_one(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TWIN_RUN_ROOT", raising=False)
    scen = _write(tmp_path, SHORT)
    assert main(["run", str(scen), "-q"]) == 0
    full = tmp_path / "runs" / "small-seed3"
    before = (full / "summary.json").read_bytes()
    assert main(["run", str(scen), "-q", "--until", "07:10", "--snapshot", "now.snap"]) == 0
    partial = tmp_path / "runs" / "small-seed3-until0710"
    assert json.loads((partial / "summary.json").read_text())["sim_time_s"] == 600.0
    assert read_marker(partial)["finished"] is False
    assert (full / "summary.json").read_bytes() == before
    # naming the finished folder: a refusal that names --out
    err = _error_of(capsys, ["run", str(scen), "-q", "--until", "07:10", "--out", str(full)])
    assert "--out" in err and "finished run" in err
    assert (full / "summary.json").read_bytes() == before


def test_scenario_file_cannot_send_results_outside_the_run_root(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TWIN_RUN_ROOT", raising=False)
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "keep.txt").write_text("mine")
    scen = _write(tmp_path, dict(SHORT, outputs={"interval": "5min", "dir": "victim"}))
    err = _error_of(capsys, ["run", str(scen), "-q"])
    assert "outputs.dir" in err and "outside the run root" in err and "--out" in err
    assert (tmp_path / "victim" / "keep.txt").read_text() == "mine"
    far = _write(tmp_path, dict(SHORT, outputs={"interval": "5min", "dir": "../elsewhere"}), "far.yaml")
    assert "outside the run root" in _error_of(capsys, ["run", str(far), "-q"])
    assert not (tmp_path.parent / "elsewhere").exists()
    # inside the run root it is fine; so is anything given on the command line
    ok = _write(tmp_path, dict(SHORT, outputs={"interval": "5min", "dir": "runs/mine"}), "ok.yaml")
    assert main(["run", str(ok), "-q"]) == 0 and (tmp_path / "runs" / "mine" / "results.nc").is_file()
    assert main(["run", str(far), "-q", "--out", str(tmp_path / "chosen")]) == 0


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden", "x" * 200])
def test_scenario_name_that_is_not_one_folder_name_is_refused(tmp_path, capsys, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    scen = _write(tmp_path, dict(SHORT, name=name))
    err = _error_of(capsys, ["run", str(scen), "-q"])
    assert "name" in err and "folder name" in err  # (the schema may refuse a long name first)
    assert not (tmp_path / "x-seed3").exists() and not (tmp_path.parent / "x-seed3").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["s.yaml"]


def test_run_folder_files_are_readable_by_all(tmp_path):
    out = tmp_path / "run"
    assert main(["run", str(_write(tmp_path, SHORT)), "--out", str(out), "-q"]) == 0
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes == dict.fromkeys(modes, 0o644) and "scenario.yaml" in modes
    assert stat.S_IMODE(out.stat().st_mode) == 0o755


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftover_part_folders_of_ours_are_cleaned_at_the_next_start(tmp_path):
    ours = tmp_path / ".run.abc123.part"
    ours.mkdir()
    (ours / "results.nc").write_bytes(b"half")
    (ours / MARKER).write_text(
        json.dumps({"format": "city-twin folder", "pid": _dead_pid(), "host": os.uname().nodename})
    )
    busy = tmp_path / ".run.def456.part"  # a write still going on (this very process)
    busy.mkdir()
    (busy / MARKER).write_text(
        json.dumps({"format": "city-twin folder", "pid": os.getppid(), "host": os.uname().nodename})
    )
    foreign = tmp_path / ".cache.part"  # not ours: no marker
    foreign.mkdir()
    (foreign / "data").write_text("someone else's")
    swapped = tmp_path / ".old_run.999999999.old"  # killed between the two renames of a swap
    swapped.mkdir()
    (swapped / MARKER).write_text(json.dumps({"format": "city-twin folder", "finished": True}))
    removed = clean_leftovers(tmp_path)
    assert removed == [ours] and not ours.exists()
    assert busy.exists() and (foreign / "data").read_text() == "someone else's"
    assert (tmp_path / "old_run" / MARKER).is_file() and not swapped.exists()  # put back


def test_leftovers_cleaned_when_twin_run_starts(tmp_path):
    ours = tmp_path / ".run.zzz.part"
    ours.mkdir()
    (ours / MARKER).write_text(
        json.dumps({"format": "city-twin folder", "pid": _dead_pid(), "host": os.uname().nodename})
    )
    assert main(["run", str(_write(tmp_path, SHORT)), "--out", str(tmp_path / "run"), "-q"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "s.yaml"]


# ----------------------------------------------------------------- full disk


def test_disk_full_while_writing_is_a_clear_error_and_keeps_the_old_run(tmp_path, capsys, monkeypatch):
    import errno

    scen = _write(tmp_path, SHORT)
    out = tmp_path / "run"
    assert main(["run", str(scen), "--out", str(out), "-q"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full(*args, **kwargs):  # the fault-injecting writer: the destination disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(shutil, "copyfile", full)
    err = _error_of(capsys, ["run", str(scen), "--out", str(out), "-q", "--overwrite"])
    assert "No space left on device" in err and "run" in err and "nothing was changed" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "s.yaml"]  # no .part left


def test_disk_full_before_writing_is_caught_by_the_space_check(tmp_path, capsys, monkeypatch):
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    err = _error_of(capsys, ["run", str(_write(tmp_path, SHORT)), "--out", str(tmp_path / "run"), "-q"])
    assert "no space left" in err.lower() and "MB needed" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tmpfs is Linux")
def test_full_tmpfs_exits_2_not_a_segfault(tmp_path):
    """A real full disk (a 300 kB tmpfs, where the machine allows mounting one): exit 2, no crash."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mnt)], capture_output=True).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        scen = _write(tmp_path, SHORT)
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        r = subprocess.run(
            [sys.executable, "-m", "twin.cli", "run", str(scen), "--out", str(mnt / "run"), "-q"],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert r.returncode == 2, r.stderr[-2000:]
        assert "no space left" in " ".join(r.stderr.split()).lower() and "Traceback" not in r.stderr
        assert list(mnt.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


# ------------------------------------------------------------ built-in names


def test_builtins_found_with_or_without_yaml_outside_the_library(tmp_path, monkeypatch):
    from scenarios import load_scenario
    from twin.cli.compare import _scenarios

    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_whatif.yaml").write_text(
        "extends: evening_peak.yaml\nbaseline: evening_peak.yaml\n"
        "interventions:\n  - {kind: close, place: Old Bridge, at: '15:30', until: '19:30'}\n"
    )
    what = load_scenario("my_whatif.yaml")
    base = load_scenario("evening_peak.yaml")
    assert base.name == "evening_peak" and base == load_scenario("evening_peak")
    assert what.time == base.time and len(what.interventions) == 1
    assert what.baseline == "evening_peak"
    b, s = _scenarios(["evening_peak.yaml", "my_whatif.yaml"])
    assert (b.name, s.name) == ("evening_peak", "my_whatif")
    # a file of that name beside the scenario still wins over the built-in
    (tmp_path / "evening_peak.yaml").write_text(yaml.safe_dump(dict(SHORT, name="local")))
    assert load_scenario("evening_peak.yaml").name == "local"


# ------------------------------------------------------------------- tables


def _render(table, width: int = 80) -> str:
    buf = StringIO()
    Console(file=buf, width=width, color_system=None).print(table)
    return buf.getvalue()


def test_comparison_table_at_80_columns_keeps_numbers_whole_and_verdicts_honest():
    from twin.cli.compare import comparison_table

    rows = [
        {
            "key": "total_delay_h",
            "label": "Total delay (all trips so far)",
            "unit": "veh·h",
            "baseline": 2225.3,
            "scenario": 5852.1,
            "difference": 3626.8,
            "ci_low": 3123456.4,
            "ci_high": 4123456.1,
            "significant": True,
        },
        {
            "key": "trips_cancelled",
            "label": "Trips cancelled before departure",
            "unit": "",
            "baseline": 0.0,
            "scenario": 0.0,
            "difference": 0.0,
            "ci_low": 0.0,
            "ci_high": 0.0,
            "significant": False,
        },
        {
            "key": "trips_deterred",
            "label": "Trips not made for congestion (demand elasticity)",
            "unit": "",
            "baseline": 12000.0,
            "scenario": 31900.0,
            "difference": 19900.0,
            "ci_low": 19900.0,
            "ci_high": 19900.0,
            "significant": True,
        },
    ]
    text = _render(
        comparison_table(
            {"replications": 4, "scenario": "whatif_old_bridge_closed", "baseline": "evening_peak", "kpis": rows}
        )
    )
    assert max(len(line) for line in text.splitlines()) <= 80
    for number in ("2,225.3", "5,852.1", "+3,626.8", "+3,123,456.4", "+4,123,456.1", "12,000", "+19,900"):
        assert number in text, number
    assert "0.00" not in text  # counts are integers
    first = next(line for line in text.splitlines() if line.lstrip().startswith("Total delay"))
    assert first.rstrip().endswith("yes")
    # zero-width intervals (0 … 0, and +19,900 every replication): never "significant"
    assert " ".join(text.split()).count("no spread") == 2 + 1 and text.count("yes") == 1  # (+1: the caption's)


def test_verdict_needs_an_interval_with_width_that_excludes_zero():
    from twin.cli.compare import verdict

    assert verdict({"ci_low": 1.0, "ci_high": 2.0, "significant": True}) == "yes"
    assert verdict({"ci_low": -1.0, "ci_high": 2.0, "significant": False}) == "no"
    assert verdict({"ci_low": 5.0, "ci_high": 5.0, "significant": True}) == "no spread"
    assert verdict({"ci_low": None, "ci_high": None, "significant": False}) == "no"


def test_twin_vs_truth_ends_in_a_table():
    from experiments.twin_vs_truth import result_table

    run = {
        "flow_rmse_hourly": 13.6,
        "flow_excess_hourly": 12.1,
        "flow_rmse_5min": 29.4,
        "speed_rmse": 1.03,
        "flow_coverage": 0.85,
        "flow_coverage_busy": 0.91,
        "speed_coverage": 0.81,
        "wall_s": 3.0,
    }
    res = {
        "held_out": 577,
        "sensors": 102,
        "messages": 1231,
        "open_loop": run,
        "assimilated": dict(run, flow_rmse_hourly=12.5),
        "reduction": {"flow_rmse_hourly": 1 - 12.5 / 13.6},
    }
    text = _render(result_table(res))
    assert "hourly flow RMSE" in text and "13.6" in text and "12.5" in text and "+8%" in text
    assert "{" not in text  # not JSON


# -------------------------------------------------------------- truth files


def test_truth_never_writes_over_the_shipped_sample(tmp_path, capsys):
    from experiments.truth import SAMPLE_DIR, _new_folder
    from experiments.truth import main as truth_main

    before = {p.name: p.read_bytes() for p in SAMPLE_DIR.iterdir()}
    for argv in (["--out", str(SAMPLE_DIR)], ["--update-sample", "--out", str(tmp_path)]):
        with pytest.raises(SystemExit) as exc:
            truth_main(argv)
        assert exc.value.code == 2
    assert "--update-sample" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in SAMPLE_DIR.iterdir()} == before
    (tmp_path / "truth").mkdir()
    (tmp_path / "truth-2").mkdir()
    assert _new_folder(tmp_path / "truth") == tmp_path / "truth-3"
    assert _new_folder(tmp_path / "new") == tmp_path / "new"


# ------------------------------------------------------------------- Dask


def test_dask_info_logging_kept_out_of_the_terminal(monkeypatch):
    import logging

    from experiments.executor import Executor

    root = logging.getLogger()
    monkeypatch.setattr(root, "level", logging.WARNING)
    ex = Executor(workers=1)
    try:
        assert logging.getLogger("distributed").getEffectiveLevel() >= logging.WARNING
        assert logging.getLogger("distributed.scheduler").getEffectiveLevel() >= logging.WARNING
        assert ex.map(pow, [(2, 3)]) == [8]
    finally:
        ex.close()


def test_confined_resolves_links_and_names_the_field(tmp_path, monkeypatch):
    from basics.errors import InputError
    from twin.cli.common import confined

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TWIN_RUN_ROOT", raising=False)
    (tmp_path / "runs").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "runs" / "link").symlink_to(tmp_path / "outside")
    assert (
        confined(tmp_path / "runs" / "a" / "dead.jsonl", "feeds.dead_letter") == tmp_path / "runs" / "a" / "dead.jsonl"
    )
    for bad in (tmp_path / "runs" / "link" / "dead.jsonl", tmp_path / "runs" / ".." / "x.jsonl", Path("/etc/passwd")):
        with pytest.raises(InputError, match="feeds.dead_letter .* outside the run root"):
            confined(bad, "feeds.dead_letter", option="--dead-letter")
    monkeypatch.setenv("TWIN_RUN_ROOT", str(tmp_path / "outside"))
    assert confined(tmp_path / "outside" / "d.jsonl", "feeds.dead_letter")


def test_iteration_and_kpi_tables_keep_numbers_whole_at_80_columns():
    from twin.cli.common import kpi_table
    from twin.cli.equilibrate import iteration_table

    day = {
        "relative_gap": 0.1234,
        "mean_travel_time_s": 1234.5,
        "vehicle_hours": 123456.7,
        "trips_completed": 560000,
        "switch_share": 0.333,
        "departures_shifted": 123456,
        "mean_departure_shift_s": -312.0,
        "wall_s": 1136.2,
    }
    text = _render(iteration_table([dict(day, iteration=i) for i in (1, 20)], title="default — days"))
    assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text
    for number in ("12.34 %", "1,234.5", "123,457", "560,000", "0.333", "123,456", "-5.2", "1136.2"):
        assert number in text, number
    kpis = {"trips_total": 1234567, "trips_deterred": 0, "mean_travel_time_s": 1234.5678, "vehicle_hours": 98765.4}
    text = _render(kpi_table(kpis), width=60)
    assert "1,234,567" in text and "98,765.4" in text and "…" not in text


def test_kill_9_while_writing_leaves_a_marked_part_folder_that_the_next_write_removes(tmp_path):
    import signal
    import time

    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from basics.atomic import replace_folder\n"
        "def fill(tmp):\n"
        "    (tmp / 'results.nc').write_bytes(b'x' * 100000)\n"
        "    print('filling', flush=True)\n"
        "    time.sleep(60)\n"
        "replace_folder(Path(sys.argv[1]), fill)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "filling"
        parts = [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
        assert len(parts) == 1 and read_marker(parts[0])["pid"] == proc.pid
        assert clean_leftovers(tmp_path) == []  # its writer is still running: left alone
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    time.sleep(0.05)
    assert parts[0].exists() and not (tmp_path / "run").exists()  # what kill -9 leaves
    from basics.atomic import replace_folder

    replace_folder(tmp_path / "run", lambda tmp: (tmp / "a.txt").write_text("ok"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the next write cleaned it


def test_compare_refuses_a_folder_the_twin_did_not_write_before_running(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.md").write_text("keep")
    scen = _write(tmp_path, SHORT)
    err = _error_of(
        capsys, ["compare", str(scen), str(scen), "-n", "2", "--workers", "0", "-q", "--out", str(tmp_path / "docs")]
    )
    assert "docs" in err and "did not write" in err
    assert [p.name for p in (tmp_path / "docs").iterdir()] == ["notes.md"]


def test_scratch_encoding_of_a_killed_writer_is_removed(tmp_path):
    from twin.results import _clean_scratch

    dead = tmp_path / f".city-twin-{_dead_pid()}-abc.nc"
    live = tmp_path / f".city-twin-{os.getpid()}-def.nc"
    other = tmp_path / "someone.nc"
    for p in (dead, live, other):
        p.write_bytes(b"x")
    _clean_scratch(str(tmp_path))
    assert not dead.exists() and live.exists() and other.exists()
