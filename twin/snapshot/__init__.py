r"""Snapshots: the whole state of a twin on disk, and back, without running code from the file.

A snapshot holds the city, the traffic state (links, vehicles, routes), every
component's records (interventions, incidents and units, agents, feeds), the
link changes in force, the recorder's rows so far, and every random generator's
state.  SimPy processes are not stored: they are thin drivers over those
records, and a restored twin builds them again (:meth:`Twin._start_processes`)
on a fresh clock set to the snapshot's time, with each process's next event at
the time its record says.  Simultaneous events keep their order because every
kind of process has a fixed priority (:data:`twin.clock.PRIORITY`).  So
restore-then-run equals the uninterrupted run, bit for bit.

File format (``city-twin-snapshot``, version :data:`VERSION`)
------------------------------------------------------------

Three parts, one after the other::

    {"format": "city-twin-snapshot", "version": 2, ... "body_bytes": N}   \n <- header (JSON, padded to 1023 bytes)
    sha256:<64 hex digits>\n                          <- sha256 of the body, a newline and the header line
    <body: N bytes, a zip archive in .npz layout>

The body holds ``manifest.json`` (the object graph, see below) and one ``aK.npy``
member per numpy array (uncompressed; read with ``allow_pickle=False``, so an
array can never hold Python objects).  :func:`read_snapshot` checks, before it
uses anything: the header's format and version, the package version, that the
body has the length the header says (a truncated file), and the sha256 checksum
(a bit flipped anywhere); then every array member's size against its header.
Each failure is an :class:`~basics.errors.InputError` naming the file.

The manifest is a generic object-graph encoding (why not a schema of records
per component: the state is spread over some forty classes that several
people maintain; encoding each class's own ``__getstate__`` keeps every
existing snapshot rule -- caches dropped, views rebuilt, old snapshots
upgraded by ``__setstate__`` -- and restore-then-run stays exact, while a new
field needs no change here).  JSON numbers, strings, lists and mappings carry
plain data; tagged objects carry tuples, dicts with other keys, sets, arrays,
numpy scalars, random generators (by their state), and instances.  An instance
is rebuilt only if its class is in the registry (:func:`registry`: the classes
defined in the project's own modules listed in :data:`SNAPSHOT_MODULES`, plus
:data:`EXTRA_CLASSES`), as ``cls.__new__(cls)`` and then its ``__setstate__``
(or its ``__dict__``) with the decoded state -- nothing named in the file is
imported or called.  Functions (dispatch policies) are stored by their
registered name and looked up in :func:`twin.emergency.dispatch.policy_registry`;
bound methods only as methods of a registered class.  Writing refuses anything
else (naming it), so every snapshot that is written can be read back.

The checksum detects damage, not forgery: it is not a signature.  A forged file
can hold odd state, but it cannot run code: the worst it can do is raise an
error or give a twin with wrong numbers.  Keep snapshots where only the twin's
operators can write.

Written to a temporary file and renamed, so an interrupted snapshot never
leaves a half-written file.  Files of version 1 (pickles) are refused: reading
them could run code.
"""

from __future__ import annotations

from twin.snapshot.classes import (
    BIT_GENERATORS,
    EXTRA_CLASSES,
    METHOD_OWNERS,
    MOVED_CLASSES,
    SNAPSHOT_MODULES,
    registry,
)
from twin.snapshot.codec import decode_state, encode_state
from twin.snapshot.errors import SnapshotError
from twin.snapshot.files import (
    FORMAT,
    RECORDS_FORMAT,
    RECORDS_VERSION,
    VERSION,
    read_snapshot,
    records_bytes,
    records_from_bytes,
    snapshot_bytes,
    snapshot_header,
    twin_from_bytes,
    verify_bytes,
    write_snapshot,
)

__all__ = [
    "write_snapshot",
    "read_snapshot",
    "snapshot_header",
    "snapshot_bytes",
    "twin_from_bytes",
    "verify_bytes",
    "encode_state",
    "decode_state",
    "registry",
    "FORMAT",
    "VERSION",
    "SnapshotError",
    "records_bytes",
    "records_from_bytes",
    "RECORDS_FORMAT",
    "RECORDS_VERSION",
    "SNAPSHOT_MODULES",
    "MOVED_CLASSES",
    "EXTRA_CLASSES",
    "METHOD_OWNERS",
    "BIT_GENERATORS",
]
