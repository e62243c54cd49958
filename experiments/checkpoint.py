"""Resuming a comparison: each replication kept as it lands, in a checkpoint folder.

A checkpoint folder sits beside the comparison folder (``.<out>.replications/``, see
:func:`checkpoint_for`) with one checksummed records file per run
(:func:`twin.snapshot.records_bytes`: plain data, read without running code) and the
comparison's ``key.json``; :mod:`experiments.compare` takes the runs found there and runs
only the rest.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import xarray as xr

from basics.atomic import write_bytes
from experiments.replication import ComparisonError, Replication
from twin.results import package_version
from twin.snapshot import SnapshotError, records_bytes, records_from_bytes

__all__ = ["Checkpoint", "checkpoint_for"]

log = logging.getLogger(__name__)


def checkpoint_for(out: str | os.PathLike[str]) -> Path:
    """The checkpoint folder of the comparison folder ``out``: ``.<name>.replications`` beside it."""
    out = Path(out)
    return out.parent / f".{out.name}.replications"


def _checkpoint_key(hashes: dict, seeds: list[int], response: str, iterations: int | None) -> dict:

    return {
        "kind": "comparison replications",
        "baseline_hash": hashes["baseline"],
        "scenario_hash": hashes["scenario"],
        "seeds": [int(s) for s in seeds],
        "response": response,
        "iterations": iterations,
        "package_version": package_version(),
    }


def _plain_dataset(ds: xr.Dataset | None):
    if ds is None:
        return None

    def var(v: xr.Variable):
        return [list(v.dims), v.values, dict(v.attrs)]

    return {
        "vars": {str(n): var(ds[n].variable) for n in ds.data_vars},
        "coords": {str(n): var(c.variable) for n, c in ds.coords.items()},
        "attrs": dict(ds.attrs),
    }


def _optional_dataset_from_plain(d) -> xr.Dataset | None:
    return None if d is None else _dataset_from_plain(d)


def _dataset_from_plain(d) -> xr.Dataset:
    return xr.Dataset(
        {n: xr.Variable(tuple(v[0]), v[1], v[2]) for n, v in d["vars"].items()},
        coords={n: xr.Variable(tuple(v[0]), v[1], v[2]) for n, v in d["coords"].items()},
        attrs=d["attrs"],
    )


def _replication_record(rep: Replication) -> dict:
    return {
        "variant": rep.variant,
        "index": rep.index,
        "seed": rep.seed,
        "scenario_hash": rep.scenario_hash,
        "kpis": dict(rep.kpis),
        "data": _plain_dataset(rep.data),
        "intervened": [int(i) for i in rep.intervened],
        "wall_s": float(rep.wall_s),
        "labels": {k: tuple(v) for k, v in rep.labels.items()},
        "geometry": _plain_dataset(rep.geometry),
        "run_files": None
        if rep.run_files is None
        else {name: np.frombuffer(payload, np.uint8) for name, payload in rep.run_files.items()},
        "day1_kpis": None if rep.day1_kpis is None else dict(rep.day1_kpis),
    }


def _replication_from_record(r: dict) -> Replication:
    return Replication(
        variant=str(r["variant"]),
        index=int(r["index"]),
        seed=int(r["seed"]),
        scenario_hash=str(r["scenario_hash"]),
        kpis=dict(r["kpis"]),
        data=_dataset_from_plain(r["data"]),
        intervened=list(r["intervened"]),
        wall_s=float(r["wall_s"]),
        labels={k: tuple(v) for k, v in r["labels"].items()},
        geometry=_optional_dataset_from_plain(r["geometry"]),
        run_files=None if r["run_files"] is None else {k: v.tobytes() for k, v in r["run_files"].items()},
        day1_kpis=r["day1_kpis"],
    )


class Checkpoint:
    """A folder of finished replications of one comparison (see the module docstring).

    Parameters
    ----------
    folder : path
        Where the runs are kept (created when the first run lands).
    key : dict
        What identifies the comparison (scenario hashes, seeds, response, code version).
    resume : bool
        Take the runs already there (if the key matches); ``False`` starts afresh.
    """

    KIND = "comparison replication"

    def __init__(self, folder: str | os.PathLike[str], key: dict, *, resume: bool = True) -> None:
        self.folder = Path(folder)
        self.key = json.loads(json.dumps(key))
        self.resume = resume

    def _ours(self) -> dict | None:
        try:
            return json.loads((self.folder / "key.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def load(self) -> dict[tuple[str, int], Replication]:
        """The runs of this comparison already kept, by (variant, index); a checkpoint of another
        comparison (or ``resume=False``) is removed; a folder that is not a checkpoint is refused.
        """
        if not self.folder.exists():
            return {}
        have = self._ours()
        if not isinstance(have, dict) or have.get("kind") != self.key["kind"]:
            raise ComparisonError(f"{str(self.folder)!r} exists and is not a comparison checkpoint: move it away")
        if have != self.key or not self.resume:
            log.info(
                "replacing the checkpoint %s (%s)",
                self.folder,
                "a fresh start" if not self.resume else "it belongs to another comparison",
            )
            self.discard()
            return {}
        found: dict[tuple[str, int], Replication] = {}
        for path in sorted(self.folder.glob("*.rep")):
            try:
                rep = _replication_from_record(
                    records_from_bytes(path.read_bytes(), kind=self.KIND, what=repr(str(path)))
                )
            except (SnapshotError, OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
                log.warning("checkpoint run %s cannot be used (%s): it runs again", path.name, exc)
                continue
            if path.name == f"{rep.variant}-{rep.index}.rep" and rep.seed == self.key["seeds"][rep.index]:
                found[(rep.variant, rep.index)] = rep
        return found

    def save(self, rep: Replication) -> Path:
        """Keep one finished run (written atomically)."""
        if not self.folder.exists():
            self.folder.mkdir(parents=True)
            write_bytes(self.folder / "key.json", json.dumps(self.key, indent=1).encode("utf-8"))
        return write_bytes(
            self.folder / f"{rep.variant}-{rep.index}.rep",
            records_bytes(_replication_record(rep), kind=self.KIND),
            fsync=True,
        )

    def discard(self) -> None:
        """Remove the folder (only a checkpoint: its files and key)."""
        import shutil

        if self.folder.exists() and isinstance(self._ours(), dict):
            shutil.rmtree(self.folder, ignore_errors=True)
