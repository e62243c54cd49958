"""Helpers shared by the ``twin`` sub-commands: KPI tables and where results go."""

from __future__ import annotations

import os
from pathlib import Path

from rich.table import Table

from basics.atomic import check_replaceable, clean_leftovers
from basics.errors import InputError
from twin.results import kpi_labels
from viz.data import fmt_value

__all__ = ["confined", "folder_name", "kpi_table", "out_folder", "run_root"]


def _fmt(value: object) -> str:
    """A value as every table and report shows it (one rule: :func:`viz.data.fmt_value`)."""
    return fmt_value(value)


def kpi_table(kpis: dict, title: str = "KPIs") -> Table:
    """A rich table of KPIs with labels and units."""
    labels = kpi_labels()
    table = Table(title=title)
    table.add_column("KPI", overflow="fold")  # the label may wrap at 80 columns; numbers never do
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("unit", no_wrap=True)
    for key, value in kpis.items():
        label, unit = labels.get(key, (key, ""))
        table.add_row(label, _fmt(value), unit)
    return table


#: longest scenario name used in a folder name (file systems allow 255 bytes a component)
_MAX_NAME = 120


def run_root() -> Path:
    """The project's run root: ``$TWIN_RUN_ROOT``, or ``runs`` in the working directory.

    Default run folders go here, and folders named by scenario files (``outputs.dir``)
    must lie inside it; only a path given on the command line (``--out``) may be
    elsewhere.
    """
    return Path(os.environ.get("TWIN_RUN_ROOT") or "runs")


def folder_name(name: str, *, field: str = "name") -> str:
    """``name`` if it is safe as one folder name, else an :class:`InputError` naming ``field``.

    A scenario's name becomes part of its run folder's name; one with a path separator,
    ``..``, a leading dot, control characters or more than 120 characters would put the
    folder somewhere else (or hidden), so it is refused.
    """
    text = str(name)
    bad = (
        "/" in text
        or "\\" in text
        or text in (".", "..")
        or text.startswith(".")
        or ".." in text
        or any(ord(c) < 32 or ord(c) == 127 for c in text)
        or len(text.encode("utf-8")) > _MAX_NAME
    )
    if bad:
        raise InputError(
            f"scenario {field} {text[:80]!r} cannot be used in a folder name (no '/', '\\', '..', leading dot "
            f"or control characters, at most {_MAX_NAME} bytes); rename it, or give --out"
        )
    return text


def _inside(path: Path, root: Path) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def confined(path: str | os.PathLike, field: str, *, option: str = "give --out on the command line") -> Path:
    """``path``, named by a scenario file's ``field``, if it lies inside :func:`run_root`.

    A scenario file is data anyone may hand over: the folders and files it names
    (``outputs.dir``, ``feeds.dead_letter``) must stay inside the run root (links
    resolved), so it cannot replace or append to anything elsewhere.  Only a path
    given on the command line (``option``) may point outside.

    Raises
    ------
    InputError
        Naming the field, the path, the run root and ``option``.
    """
    path = Path(path)
    if not _inside(path, run_root()):
        raise InputError(
            f"{field} {str(path)!r} (from the scenario file) is outside the run root "
            f"{os.path.abspath(run_root())!r}: a scenario file may only name paths inside it "
            f"(set TWIN_RUN_ROOT to move the root); to write elsewhere: {option}"
        )
    return path


def out_folder(cli_out: str | None, scenario, default: str, *, overwrite: bool) -> Path:
    """The folder a command writes, checked before anything runs.

    ``--out`` (``cli_out``) is used as given; else the scenario's ``outputs.dir``,
    which must lie inside :func:`run_root` (a scenario file cannot send results, or
    the replacement of a folder, elsewhere); else ``run_root()/default`` (``{name}``
    in it: the scenario name, checked by :func:`folder_name`).  The
    folder must be new, empty or one the twin wrote, and a finished run is replaced
    only with ``overwrite`` (:func:`basics.atomic.check_replaceable`).  Temporary
    folders that an interrupted earlier write left beside it are removed.
    """
    if cli_out:
        out, what = Path(cli_out), "--out"
    elif scenario.outputs.dir:
        out, what = (
            confined(scenario.outputs.dir, "outputs.dir", option="give --out on the command line"),
            "outputs.dir",
        )
    else:
        out, what = run_root() / default.format(name=folder_name(scenario.name)), "run folder"
    check_replaceable(out, overwrite=overwrite, what=what)
    if out.parent.is_dir():
        clean_leftovers(out.parent)
    return out
