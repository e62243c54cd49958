"""Snapshot files and bytes: the header, the checksum line and the body, written and checked.

:func:`write_snapshot` / :func:`snapshot_bytes` write a twin; :func:`read_snapshot` /
:func:`twin_from_bytes` check a file (format, version, package version, length, sha256)
before they decode anything; :func:`records_bytes` / :func:`records_from_bytes` use the same
container for plain data (checkpoints).  See :mod:`twin.snapshot` for the layout.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from basics.atomic import atomic_open
from twin.snapshot.archive import _HashingWriter, _pack_to, _unpack
from twin.snapshot.codec import _Decoder, decode_state, encode_state
from twin.snapshot.errors import SnapshotError

FORMAT = "city-twin-snapshot"
VERSION = 2
_HEADER_MAX = 4096


def _header_for(twin) -> dict:
    from twin.results import package_version

    return {
        "format": FORMAT,
        "version": VERSION,
        "package_version": package_version(),
        "scenario": twin.scenario.name,
        "scenario_hash": twin.scenario_hash,
        "seed": int(twin.seed),
        "sim_time_s": float(twin.now),
        "clock_s": float(twin.clock_s()),
    }


#: bytes reserved at the start of a snapshot file for its header line and checksum line
_RESERVED = 1024 + len("sha256:") + 64 + 1


def _lines(header: dict, digest: hashlib._Hash) -> bytes:
    """The header line (padded with spaces to a fixed width) and the checksum line."""
    line = json.dumps(header, separators=(",", ":")).encode("utf-8")
    if len(line) > 1023:
        raise SnapshotError(f"snapshot header too long ({len(line)} bytes): a scenario name that long?")
    line = line.ljust(1023)
    digest.update(b"\n" + line)
    return line + b"\n" + f"sha256:{digest.hexdigest()}".encode("ascii") + b"\n"


def _write_to(fh, twin) -> None:
    """Write the snapshot file to ``fh`` (seekable): room for the lines, the body, then the lines.

    The checksum is sha256 of the body, a newline and the header line, in that order (so it
    is computed as the body is written).
    """
    twin.sync()
    header = _header_for(twin)
    manifest, arrays = encode_state(twin)
    from concurrent.futures import ThreadPoolExecutor

    start = fh.tell()
    fh.write(b" " * _RESERVED)
    with ThreadPoolExecutor(1) as pool:
        writer = _HashingWriter(fh, pool)
        _pack_to(writer, manifest, arrays)
        digest = writer.hexdigest()
    header["body_bytes"] = writer.n
    end = fh.tell()
    fh.seek(start)
    fh.write(_lines(header, digest))
    fh.seek(end)


def snapshot_bytes(twin) -> bytes:
    """The whole state of ``twin`` as the bytes of a snapshot file (see the module docstring)."""
    buf = io.BytesIO()
    _write_to(buf, twin)
    return buf.getvalue()


def write_snapshot(twin, path: str | os.PathLike) -> Path:
    """Write ``twin``'s state to ``path`` atomically (a temporary file renamed); returns the path."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise SnapshotError(f"snapshot path {str(path)!r} is a folder; give a file name (e.g. now.snap)")
    try:
        with atomic_open(path, "wb", fsync=True, buffering=1 << 20) as fh:
            _write_to(fh, twin)
    except OSError as exc:
        raise SnapshotError(f"cannot write snapshot {str(path)!r}: {exc.strerror or exc}") from None
    return path


def _parse_header(line: bytes, what: str) -> dict:
    try:
        header = json.loads(line)
    except (ValueError, RecursionError):
        header = None
    fmt = header.get("format") if isinstance(header, dict) else None
    if fmt == "city-twin-snapshot/1":
        raise SnapshotError(
            f"snapshot {what} is in the old format 1 (a Python pickle), which this version no "
            "longer reads because loading it could run code: make the snapshot again"
        )
    if fmt != FORMAT:
        raise SnapshotError(f"{what} is not a city-twin snapshot (no '{FORMAT}' header)")
    if header.get("version") != VERSION:
        raise SnapshotError(
            f"snapshot {what} has format version {header.get('version')!r}; this version of "
            f"city-twin reads version {VERSION}"
        )
    for key, kind in (
        ("package_version", str),
        ("scenario", str),
        ("sim_time_s", float),
        ("clock_s", float),
        ("body_bytes", int),
    ):
        if not isinstance(header.get(key), kind) or isinstance(header.get(key), bool):
            raise SnapshotError(f"snapshot {what} is damaged: header field {key!r} is missing or wrong")
    return header


def snapshot_header(path: str | os.PathLike) -> dict:
    """The header of a snapshot file (cheap: reads its first line; :func:`read_snapshot` checks the rest)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            line = fh.readline(_HEADER_MAX)
    except FileNotFoundError:
        raise SnapshotError(f"snapshot {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise SnapshotError(f"snapshot {str(path)!r} is a folder, not a file") from None
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {str(path)!r}: {exc.strerror or exc}") from None
    return _parse_header(line, repr(str(path)))


def _check_lines(data: bytes, what: str, total: int) -> tuple[bytes, bytes, int]:
    """Check the header line (format, version, package version) and the checksum line at the
    start of ``data``, and that the file's ``total`` length fits the header; returns
    (header line, checksum line, where the body starts).
    """
    from twin.results import package_version

    nl = data.find(b"\n", 0, _HEADER_MAX)
    line = data[:nl] if nl >= 0 else data[:_HEADER_MAX]
    header = _parse_header(line, what)
    if header["package_version"] != package_version():
        raise SnapshotError(
            f"snapshot {what} was written by city-twin {header['package_version']}, "
            f"this is {package_version()}: restore it with that version"
        )
    nl2 = data.find(b"\n", nl + 1, nl + 1 + 100)
    check = data[nl + 1 : nl2] if nl2 >= 0 else b""
    if not check.startswith(b"sha256:") or len(check) != 7 + 64:
        raise SnapshotError(f"snapshot {what} is damaged or incomplete: no checksum line")
    if total - (nl2 + 1) != header["body_bytes"]:
        raise SnapshotError(
            f"snapshot {what} is incomplete or damaged: {total - (nl2 + 1):,} bytes of state "
            f"where its header says {header['body_bytes']:,} (a truncated file?)"
        )
    return line, check, nl2 + 1


def verify_bytes(data: bytes, what: str) -> tuple[dict, memoryview]:
    """Check a snapshot's header, version, length and checksum; returns (header, body)."""
    line, check, start = _check_lines(data, what, len(data))
    header = _parse_header(line, what)
    body = memoryview(data)[start:]  # a view: the state is not copied to be checked
    digest = hashlib.sha256()
    digest.update(body)
    digest.update(b"\n" + line)
    if digest.hexdigest().encode("ascii") != check[7:]:
        raise SnapshotError(f"snapshot {what} is damaged: its checksum does not match its contents")
    return header, body


def twin_from_bytes(data: bytes, *, what: str = "(in memory)"):
    """A twin from the bytes of a snapshot file (checked before anything is used)."""
    data = data if type(data) is bytes else bytes(data)
    verify_bytes(data, what)
    manifest, arrays = _unpack(data, what)  # the archive behind the header lines (zip allows a prefix)
    return decode_state(manifest, arrays, what=what)


def _read_checked(path: Path, what: str) -> memoryview:
    """The bytes of a snapshot file, checked as :func:`verify_bytes` does; the body is hashed in
    a second thread while the rest is read (both release the GIL), so checking costs little more
    than reading.
    """
    from concurrent.futures import ThreadPoolExecutor

    chunk = 1 << 24
    with open(path, "rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        buf = np.empty(size, np.uint8)  # not zero-filled: every byte is read into it
        mv = buf.data  # a memoryview of the array
        got = fh.readinto(mv[: min(size, _HEADER_MAX + 200)]) or 0
        start = _check_lines(bytes(buf[:got]), what, size)[2]
        digest = hashlib.sha256()
        with ThreadPoolExecutor(1) as pool:
            waits = [pool.submit(digest.update, mv[start:got])] if got > start else []
            pos = got
            while pos < size:
                n = fh.readinto(mv[pos : min(size, pos + chunk)])
                if not n:
                    raise SnapshotError(f"snapshot {what} is incomplete: the file shrank while it was read")
                waits.append(pool.submit(digest.update, mv[max(pos, start) : pos + n]))
                pos += n
            for w in waits:
                w.result()
    line, check, _ = _check_lines(bytes(buf[:got]), what, size)
    digest.update(b"\n" + line)
    if digest.hexdigest().encode("ascii") != check[7:]:
        raise SnapshotError(f"snapshot {what} is damaged: its checksum does not match its contents")
    return mv


def read_snapshot(path: str | os.PathLike):
    """Load a twin from a snapshot; it resumes where the snapshot was taken."""
    path = Path(path)
    what = repr(str(path))
    snapshot_header(path)  # a clear error for a missing file or another format, before reading it all
    try:
        buf = _read_checked(path, what)
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {what}: {exc.strerror or exc}") from None
    manifest, arrays = _unpack(buf, what)  # the archive behind the header lines (zip allows a prefix)
    return decode_state(manifest, arrays, what=what)


# ----------------------------------------------------------------------------- plain records
#: the same container for plain data (checkpoints of comparisons and forks): no classes at all
RECORDS_FORMAT = "city-twin-records"
RECORDS_VERSION = 1


def records_bytes(obj, *, kind: str) -> bytes:
    """Plain data (dicts, lists, tuples, numbers, strings, numpy arrays and scalars) as the
    bytes of a checksummed records file (the snapshot container, format :data:`RECORDS_FORMAT`).
    """
    manifest, arrays = encode_state(obj)
    buf = io.BytesIO()
    _pack_to(buf, manifest, arrays)
    body = buf.getvalue()
    line = json.dumps(
        {"format": RECORDS_FORMAT, "version": RECORDS_VERSION, "kind": kind, "body_bytes": len(body)},
        separators=(",", ":"),
    ).encode("utf-8")
    digest = hashlib.sha256(line + b"\n" + body).hexdigest()
    return line + b"\n" + f"sha256:{digest}".encode("ascii") + b"\n" + body


def records_from_bytes(data: bytes, *, kind: str, what: str):
    """What :func:`records_bytes` wrote, checked (format, kind, length, checksum) before it is decoded;
    a :class:`SnapshotError` naming ``what`` otherwise.  Only plain data comes back: any class is refused.
    """
    nl = data.find(b"\n", 0, _HEADER_MAX)
    try:
        header = json.loads(data[:nl]) if nl > 0 else None
    except ValueError:
        header = None
    if (
        not isinstance(header, dict)
        or header.get("format") != RECORDS_FORMAT
        or header.get("version") != RECORDS_VERSION
        or header.get("kind") != kind
        or type(header.get("body_bytes")) is not int
    ):
        raise SnapshotError(f"{what} is not a {kind} file of this version")
    nl2 = data.find(b"\n", nl + 1, nl + 100)
    check = data[nl + 1 : nl2] if nl2 > 0 else b""
    body = data[nl2 + 1 :] if nl2 > 0 else b""
    if (
        len(body) != header["body_bytes"]
        or not check.startswith(b"sha256:")
        or hashlib.sha256(data[:nl] + b"\n" + body).hexdigest().encode("ascii") != check[7:]
    ):
        raise SnapshotError(f"{what} is incomplete or damaged (its length or checksum does not match)")
    manifest, arrays = _unpack(body, what)
    try:
        doc = json.loads(manifest)
        return _Decoder(arrays, what, plain=True).dec(doc["root"])
    except SnapshotError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as exc:
        raise SnapshotError(f"{what} is damaged: {type(exc).__name__}: {str(exc)[:200]}") from None
