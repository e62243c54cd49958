"""Writing results so that a crash or Ctrl-C never leaves a half-written file or folder.

Everything is written under a temporary name in the destination's folder and
renamed into place (``os.replace``, atomic on one file system).

Folders the twin writes (run, comparison and equilibrium folders) carry a marker
file, :data:`MARKER`.  The twin replaces only such folders (and a finished run only
when asked to), never a folder it did not write; the marker also identifies the
hidden ``.part`` folders an interrupted write leaves, which the next write into the
same place removes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from basics.errors import InputError

__all__ = [
    "atomic_open",
    "atomic_path",
    "write_bytes",
    "write_text",
    "write_json",
    "replace_folder",
    "json_safe",
    "MARKER",
    "FolderRefused",
    "check_replaceable",
    "clean_leftovers",
    "read_marker",
]

#: the marker file in every folder the twin writes (JSON: format, kind, scenario, seed, finished, ...)
MARKER = ".city-twin.json"


def json_safe(obj):
    """Plain JSON data: NaN and infinities become ``None`` (strict JSON has neither),
    numpy scalars become Python numbers; dicts, lists and tuples are walked.
    """
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Give a temporary path beside ``path``; on success rename it to ``path``.

    For writers that want a file name (pyvista, imageio, pandas): write to the path
    given, and when the ``with`` block ends without an error the file is made readable
    by all (0644) and renamed over ``path``.  On an error (or Ctrl-C) the temporary
    file is removed and ``path`` is as it was.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write; its folder is created if missing.
    suffix : str, optional
        The temporary file's suffix (default ``path``'s own, so writers that choose the
        format by extension see the right one).

    Yields
    ------
    Path
        The temporary path to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=path.suffix if suffix is None else suffix, dir=path.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", *, fsync: bool = False, **kw: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on success rename it to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write; its folder is created if missing.
    mode : str, optional
        ``"wb"`` (default) or ``"w"`` (then ``encoding``/``newline`` may be given in ``kw``).
    fsync : bool, optional
        Flush to disk before the rename (for files whose loss after a crash matters).
    **kw
        Passed to :func:`open` (``encoding``, ``newline``, ``buffering``).

    Yields
    ------
    file object
        The open temporary file.  When the ``with`` block ends without an error it is
        closed, made readable by all (0644) and renamed over ``path``; otherwise it is
        removed and ``path`` is as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', not {mode!r}")
    with atomic_path(path, suffix=".part") as tmp, open(tmp, mode, **kw) as fh:
        yield fh
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


def write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_open(path, "wb", fsync=fsync) as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, data, *, allow_nan: bool = False, **kw) -> Path:
    """JSON (strict by default: NaN and infinities are errors, convert them first)."""
    return write_text(path, json.dumps(data, indent=2, allow_nan=allow_nan, **kw))


#: what the marker's ``format`` field says
MARKER_FORMAT = "city-twin folder"
#: leftover temporary folders younger than this are left alone when their writer cannot
#: be checked (another machine on a shared disk)
_STALE_S = 24 * 3600.0


class FolderRefused(InputError):
    """An output folder the twin will not replace (not one of its own, or a finished run)."""


def _host() -> str:
    return socket.gethostname()


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The marker of a folder the twin wrote, or ``None`` (no marker, or not ours)."""
    path = Path(folder) / MARKER
    try:
        if not path.is_file() or path.stat().st_size > 65536:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != MARKER_FORMAT:
        return None
    return data


def _write_marker(folder: Path, info: dict) -> None:
    write_json(folder / MARKER, {"format": MARKER_FORMAT, "version": 1, **json_safe(info)})


def check_replaceable(out: str | os.PathLike, *, overwrite: bool = True, what: str = "--out") -> None:
    """Refuse ``out`` unless writing there loses nothing the twin did not write.

    ``out`` may be absent, an empty folder, or a folder with the twin's marker
    (:data:`MARKER`); one holding a *finished* run is replaced only with
    ``overwrite``.  A file, or a folder without the marker (source files, someone
    else's data, a run folder from before the marker), is never replaced.

    Raises
    ------
    FolderRefused
        Naming the folder, what is in it, and ``what`` (the option to change).
    """
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir() or out.is_symlink():
        raise FolderRefused(
            f"{what} {str(out)!r} exists and is not a folder the twin wrote (a file or a link); choose another path"
        )
    try:
        empty = next(out.iterdir(), None) is None
    except OSError as exc:
        raise FolderRefused(f"{what} {str(out)!r} cannot be read ({exc.strerror}); choose another path") from None
    if empty:
        return
    marker = read_marker(out)
    if marker is None:
        raise FolderRefused(
            f"{what} {str(out)!r} is a folder the twin did not write (it has no {MARKER} marker), so "
            "it is never replaced, even with --overwrite: choose another path (or, if it is an old "
            "run folder you no longer need, remove it yourself)"
        )
    if marker.get("finished") and not overwrite:
        who = ", ".join(f"{k} {marker[k]}" for k in ("scenario", "seed") if marker.get(k) is not None)
        when = f", written {marker['written']}" if marker.get("written") else ""
        raise FolderRefused(
            f"{what} {str(out)!r} holds a finished {marker.get('kind', 'run')}"
            + (f" ({who}{when})" if who or when else "")
            + f"; give --overwrite to replace it, or another {what}"
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_leftovers(parent: str | os.PathLike) -> list[Path]:
    """Remove temporary folders that an interrupted write left in ``parent``.

    Only hidden ``.NAME.*.part`` / ``.NAME.*.old`` folders with the twin's marker
    whose writer is gone (its process ended on this machine, or it is over a day
    old) are touched; a ``.old`` folder whose run folder is missing (killed in
    the middle of the swap) is put back instead.  Returns the folders removed.
    """
    parent = Path(parent)
    removed: list[Path] = []
    try:
        entries = [p for p in parent.iterdir() if p.name.startswith(".") and p.name.endswith((".part", ".old"))]
    except OSError:
        return removed
    now = time.time()
    for path in entries:
        if path.is_symlink() or not path.is_dir():
            continue
        marker = read_marker(path)
        if marker is None:
            continue
        pid, host = marker.get("pid"), marker.get("host")
        if path.name.endswith(".part"):
            same_host = host == _host()
            alive = isinstance(pid, int) and same_host and (pid == os.getpid() or _pid_alive(pid))
            try:
                age = now - path.stat().st_mtime
            except OSError:
                continue
            if alive or (not same_host and age < _STALE_S):
                continue
        else:  # .NAME.PID.old: the previous run folder, moved aside during a swap
            name, _, swapper = path.name[1 : -len(".old")].rpartition(".")
            target = parent / name
            if swapper.isdigit() and (int(swapper) == os.getpid() or _pid_alive(int(swapper))):
                continue  # that swap is still going on
            if not target.exists():
                try:
                    os.replace(path, target)
                except OSError:
                    pass
                continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    return removed


def replace_folder(
    out: str | os.PathLike,
    fill: Callable[[Path], None],
    *,
    marker: dict | None = None,
    overwrite: bool = True,
    what: str = "folder",
) -> Path:
    """Build a folder with ``fill(tmp)`` beside ``out``, then swap it in for ``out``.

    An interrupted build leaves ``out`` as it was (or absent), never a mix.  The
    temporary folder carries the twin's marker (:data:`MARKER`, with ``marker``'s
    entries, e.g. ``kind``, ``scenario``, ``seed``, ``finished``) from its creation,
    so a leftover one is recognised and cleaned at the next write into the same
    folder (:func:`clean_leftovers`).  ``out`` is replaced only as
    :func:`check_replaceable` allows (never a folder the twin did not write; a
    finished run only with ``overwrite``).  Files in the new folder are made
    readable by all (0644) whatever the writer used.
    """
    out = Path(out)
    check_replaceable(out, overwrite=overwrite, what=what)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(out.parent)
    info = {"kind": "run", **(marker or {}), "pid": os.getpid(), "host": _host()}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    old = None
    try:
        _write_marker(tmp, {**info, "state": "writing", "finished": False})
        fill(tmp)
        for path in tmp.rglob("*"):
            if not path.is_symlink():
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
        _write_marker(
            tmp,
            {
                **info,
                "state": "complete",
                "finished": bool(info.get("finished", True)),
                "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        os.chmod(tmp, 0o755)
        check_replaceable(out, overwrite=overwrite, what=what)  # again: it may have appeared meanwhile
        if out.exists():
            old = out.with_name(f".{out.name}.{os.getpid()}.old")
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not out.exists():
            os.replace(old, out)
        if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
            reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
            raise OSError(
                exc.errno or 0,
                (
                    f"could not write {what} {str(out)!r}: {reason}; nothing was "
                    "changed there" + (" (the previous folder is as it was)" if out.exists() else "")
                ),
            ) from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out
