"""The snapshot's body: a zip archive in ``.npz`` layout (the manifest and one ``.npy`` per array).

Written straight to the file while its sha256 is computed (:class:`_HashingWriter`), and read
back from memory with every member's size checked against its header before an array is
made (``allow_pickle=False``: an array never holds Python objects).
"""

from __future__ import annotations

import hashlib
import io
import math
import zipfile

import numpy as np

from twin.snapshot.errors import SnapshotError

#: most members a snapshot's archive may have (arrays + manifest)
_MAX_MEMBERS = 10_000_000


def _npy_header(arr: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The ``.npy`` header of ``arr`` and a C-contiguous array of its bytes (``arr.T`` for Fortran order)."""
    fortran = bool(arr.flags.f_contiguous and not arr.flags.c_contiguous)
    data = arr.T if fortran else np.ascontiguousarray(arr)
    d = {"descr": np.lib.format.dtype_to_descr(arr.dtype), "fortran_order": fortran, "shape": arr.shape}
    head = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(head, d)
    except ValueError:  # a header over 64 KiB (many fields)
        head = io.BytesIO()
        np.lib.format.write_array_header_2_0(head, d)
    return head.getvalue(), data


class _HashingWriter:
    """A write-only, unseekable stream that hashes what it passes on (zip then writes data
    descriptors and never seeks back, so the hash is of the bytes as they land).
    """

    def __init__(self, fh, pool=None) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()
        self.n = 0
        self.pool = pool  # hash in this (one-thread) pool, in order, while the writing goes on
        self.waits: list = []

    def write(self, data) -> int:
        # the data stays valid: bytes, or a view of an array the caller holds until the end
        n = len(data) if isinstance(data, bytes) else memoryview(data).nbytes
        if self.pool is not None and n > 1 << 16:
            self.waits.append(self.pool.submit(self.digest.update, data))
        else:
            for w in self.waits:
                w.result()
            self.waits.clear()
            self.digest.update(data)
        self.n += n
        self.fh.write(data)
        return n

    def hexdigest(self) -> hashlib._Hash:
        for w in self.waits:
            w.result()
        self.waits.clear()
        return self.digest

    def flush(self) -> None:
        self.fh.flush()


def _pack_to(fh, manifest: bytes, arrays: list[np.ndarray]) -> None:
    """Write the body to ``fh``: a zip archive (stored, .npz layout) of the manifest and the arrays."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr("manifest.json", manifest)
        for k, arr in enumerate(arrays):
            head, data = _npy_header(arr)
            with zf.open(f"a{k}.npy", "w", force_zip64=data.nbytes > 2**30) as member:
                member.write(head)
                if data.nbytes:
                    member.write(data.reshape(-1).view(np.uint8).data)  # a memoryview of the array


class _MemFile(io.RawIOBase):
    """A read-only, seekable file over a buffer, without copying it (for the zip directory)."""

    def __init__(self, buf) -> None:
        self.mv = memoryview(buf).cast("B")
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: len(self.mv)}[whence]
        self.pos = max(0, base + pos)
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = len(self.mv) if n is None or n < 0 else min(len(self.mv), self.pos + n)
        out = self.mv[self.pos : end].tobytes() if end > self.pos else b""
        self.pos = max(self.pos, end)
        return out

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def _members(body: bytes | memoryview, bad) -> tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]:
    """The body's archive and its members by name, each checked stored, plain and inside the body."""
    try:
        zf = zipfile.ZipFile(_MemFile(body))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise bad(f"its archive cannot be read ({exc})") from None
    if len(infos) > _MAX_MEMBERS:
        raise bad(f"{len(infos)} members")
    by_name = {}
    for info in infos:
        if (
            info.compress_type != zipfile.ZIP_STORED
            or info.file_size > len(body)
            or info.flag_bits & 0x1
            or not 0 <= info.header_offset < len(body)
        ):
            raise bad(f"member {info.filename!r} is compressed, encrypted or larger than the file")
        by_name[info.filename] = info
    if "manifest.json" not in by_name:
        raise bad("no manifest.json")
    n = len(by_name) - 1
    if any(f"a{k}.npy" not in by_name for k in range(n)):
        raise bad("its arrays are not numbered a0.npy .. aN.npy")
    return zf, by_name


def _read_array(body: bytes | memoryview, mv: memoryview, info: zipfile.ZipInfo, k: int, bad) -> np.ndarray:
    """Array ``a{k}``: its size checked against its ``.npy`` header before it is made."""
    # the member's bytes straight from the body (stored, not compressed; the checksum
    # already covered them): its local header is 30 bytes, the name and an extra field
    local = body[info.header_offset : info.header_offset + 30]
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise bad(f"array a{k} has no local header")
    start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
    member = mv[start : start + info.file_size]
    if len(member) != info.file_size:
        raise bad(f"array a{k} runs past the end of the file")
    fh = io.BytesIO(member[: min(len(member), 1 << 20)])
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise bad(f"array a{k} has npy version {version}")
    count = math.prod(shape)
    offset = fh.tell()
    if dtype.hasobject or offset + count * dtype.itemsize != info.file_size:
        raise bad(f"array a{k} ({dtype}, shape {shape}) does not fit its {info.file_size} bytes")
    flat = np.frombuffer(member, dtype=dtype, count=count, offset=offset) if count else np.empty(0, dtype)
    if fortran:
        return flat.reshape(shape[::-1]).T.copy(order="F")
    return flat.reshape(shape).copy()


def _unpack(body: bytes | memoryview, what: str) -> tuple[bytes, list[np.ndarray]]:
    """The manifest and the arrays of a snapshot's body (every member checked first)."""

    def bad(msg: str) -> SnapshotError:
        return SnapshotError(f"snapshot {what} is damaged: {msg}")

    zf, by_name = _members(body, bad)
    mv = memoryview(body)
    try:
        manifest = zf.read("manifest.json")
        arrays = [_read_array(body, mv, by_name[f"a{k}.npy"], k, bad) for k in range(len(by_name) - 1)]
    except SnapshotError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, TypeError, KeyError, SyntaxError) as exc:
        raise bad(f"{type(exc).__name__}: {str(exc)[:200]}") from None
    return manifest, arrays
