"""Origin-destination travel demand: trip tables read from CSV or synthesised.

A :class:`Trips` table holds one row per vehicle trip between two network
nodes (dense indices), sorted by departure time.  It comes from

* :func:`read_trips_csv` -- a user's table with the network's *source* node ids
  (``Network.node_osmid``); every problem raises :class:`DemandError` naming
  the file, the row and the field;
* :func:`gravity_trips` -- a doubly-constrained gravity model between zones
  (productions from residents, attractions from jobs, exponential distance
  decay), integerised with a multinomial draw and given departure times from a
  time-of-day profile.

:func:`write_trips_csv` writes the CSV that :func:`read_trips_csv` reads.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from basics.atomic import atomic_open
from basics.errors import TwinError
from city_models.network import Network

__all__ = [
    "Trips",
    "DemandError",
    "DEFAULT_HOURLY_PROFILE",
    "read_trips_csv",
    "write_trips_csv",
    "gravity_trips",
    "gravity_shares",
]

logger = logging.getLogger(__name__)

#: default share of trips starting in each clock hour 0..23 (relative weights):
#: a morning peak at 7-9 h and a larger evening peak at 16-18 h
DEFAULT_HOURLY_PROFILE: tuple[float, ...] = (
    0.4,
    0.25,
    0.2,
    0.2,
    0.35,
    1.0,  # 0-5 h
    2.8,
    6.0,
    6.4,
    4.2,
    3.6,
    3.8,  # 6-11 h
    4.2,
    4.0,
    4.1,
    5.0,
    6.6,
    7.0,  # 12-17 h
    5.6,
    3.8,
    2.8,
    2.2,
    1.4,
    0.8,  # 18-23 h
)

_COLUMNS = ("trip_id", "origin", "destination", "depart_s")
_SHOW = 5  # offending rows quoted in a message
_DAY_S = 86400.0


class DemandError(TwinError):
    """Bad demand input: names the file (or argument), the row and the field."""


class Trips(NamedTuple):
    """Vehicle trips, sorted by ``depart_s`` (stable).

    Attributes
    ----------
    trip_id : int64[n]
        Unique trip id.
    origin : int32[n]
        Origin node (dense network index).
    destination : int32[n]
        Destination node (dense network index), never equal to ``origin``.
    depart_s : float64[n]
        Departure time, seconds since scenario start.
    """

    trip_id: np.ndarray
    origin: np.ndarray
    destination: np.ndarray
    depart_s: np.ndarray

    @property
    def n_trips(self) -> int:
        """The number of trips."""
        return int(self.trip_id.shape[0])


def _make_trips(trip_id: np.ndarray, origin: np.ndarray, destination: np.ndarray, depart_s: np.ndarray) -> Trips:
    order = np.argsort(depart_s, kind="stable")
    return Trips(
        trip_id=np.ascontiguousarray(trip_id[order], dtype=np.int64),
        origin=np.ascontiguousarray(origin[order], dtype=np.int32),
        destination=np.ascontiguousarray(destination[order], dtype=np.int32),
        depart_s=np.ascontiguousarray(depart_s[order], dtype=np.float64),
    )


# ---------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------


def _where(rows: np.ndarray) -> str:
    """'row 3 (line 4)' for 0-based data-row positions (header is line 1)."""
    return ", ".join(f"row {r + 1} (line {r + 2})" for r in rows[:_SHOW])


def _rows_error(
    path: Path, field: str, rows: np.ndarray, values: Sequence[Any], problem: str, hint: str = ""
) -> DemandError:
    """One-paragraph error listing the first few offending rows and the count."""
    shown = ", ".join(
        f"row {r + 1} (line {r + 2}) {field}={v!r}" for r, v in zip(rows[:_SHOW], values[:_SHOW], strict=False)
    )
    more = f" and {rows.size - _SHOW} more" if rows.size > _SHOW else ""
    count = "1 row" if rows.size == 1 else f"{rows.size} rows"
    msg = f"trips file {str(path)!r}: {count} with {problem} in field {field!r}: {shown}{more}."
    if hint:
        msg += " " + hint
    return DemandError(msg)


#: Most rows a trips table may have (a metro region's day); more is refused before they
#: are all read.
MAX_TRIP_ROWS = 20_000_000

_INT64_MAX = 2**63 - 1


def _exact_integers(path: Path, field: str, col: pd.Series) -> np.ndarray:
    """Whole numbers written as text, read exactly (ids beyond 2**53 keep every digit),
    each within a signed 64-bit integer.
    """
    values: list[int] = []
    bad: list[int] = []
    big: list[int] = []
    for r, v in enumerate(col.tolist()):
        text = str(v).strip()
        try:
            n = int(text)
        except ValueError:
            try:
                f = float(text)
            except (ValueError, OverflowError):
                f = math.nan
            if not (math.isfinite(f) and f.is_integer() and abs(f) <= 2.0**53):
                bad.append(r)
                values.append(0)
                continue
            n = int(f)
        if not -_INT64_MAX - 1 <= n <= _INT64_MAX:
            big.append(r)
        values.append(n if not -_INT64_MAX - 1 <= n <= _INT64_MAX else 0)
    raw = col.tolist()
    if bad:
        rows = np.asarray(bad)
        raise _rows_error(path, field, rows, [raw[r] for r in bad[:_SHOW]], "a value that is not a whole number")
    if big:
        rows = np.asarray(big)
        raise _rows_error(
            path,
            field,
            rows,
            [_short(raw[r]) for r in big[:_SHOW]],
            "a whole number outside the 64-bit range",
            f"Ids must lie between {-_INT64_MAX - 1} and {_INT64_MAX}.",
        )
    return np.asarray(values, dtype=np.int64)


def _short(value: object) -> str:
    """A value quoted for a message, cut to 30 characters."""
    text = str(value)
    return text if len(text) <= 30 else text[:27] + "..."


def _numeric_column(path: Path, df: pd.DataFrame, field: str, integer: bool) -> np.ndarray:
    col = df[field]
    raw: np.ndarray = col.to_numpy()
    if col.dtype.kind == "i":
        return raw.astype(np.int64) if integer else raw.astype(np.float64)
    if col.dtype.kind == "u":
        big = raw > np.uint64(_INT64_MAX)
        if integer and big.any():
            rows = np.flatnonzero(big)
            raise _rows_error(
                path,
                field,
                rows,
                raw[rows].tolist(),
                "a whole number outside the 64-bit range",
                f"Ids must lie between {-_INT64_MAX - 1} and {_INT64_MAX}.",
            )
        return raw.astype(np.int64) if integer else raw.astype(np.float64)
    if col.dtype.kind == "f":
        num = raw
        bad_text = np.zeros(raw.shape[0], dtype=bool)
    else:
        num = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad_text = np.isnan(num) & col.notna().to_numpy()
    missing = np.isnan(num) & ~bad_text
    if bad_text.any():
        rows = np.flatnonzero(bad_text)
        raise _rows_error(
            path, field, rows, [_short(v) for v in raw[rows[:_SHOW]].tolist()], "a value that is not a number"
        )
    if missing.any():
        rows = np.flatnonzero(missing)
        raise _rows_error(path, field, rows, [""] * rows.size, "a missing value")
    if not integer:
        return num.astype(np.float64)
    if col.dtype.kind != "f":
        # text column: re-parse the (valid) texts exactly, so large ids keep every digit
        return _exact_integers(path, field, col)
    frac = ~np.isfinite(num) | (num != np.floor(num)) | (np.abs(num) > 2.0**53)
    if frac.any():
        rows = np.flatnonzero(frac)
        raise _rows_error(path, field, rows, raw[rows].tolist(), "a value that is not a whole number")
    return num.astype(np.int64)


def _node_lookup(network: Network) -> tuple[np.ndarray, np.ndarray]:
    # the network's own ids, then the ids validation merged or dropped (aliases of the
    # node that replaced them): a table written against the source data still reads
    own = np.asarray(network.node_osmid, dtype=np.int64)
    ids = np.concatenate([own, np.asarray(network.alias_osmid, dtype=np.int64)])
    node = np.concatenate([np.arange(own.shape[0]), np.asarray(network.alias_node, dtype=np.int64)])
    order = np.argsort(ids, kind="stable")
    return ids[order], node[order].astype(np.int32)


def _map_nodes(path: Path, field: str, osmids: np.ndarray, sorted_ids: np.ndarray, order: np.ndarray) -> np.ndarray:
    if sorted_ids.size == 0:
        pos = np.zeros(osmids.shape[0], dtype=np.int64)
        found = np.zeros(osmids.shape[0], dtype=bool)
    else:
        pos = np.minimum(np.searchsorted(sorted_ids, osmids), sorted_ids.size - 1)
        found = sorted_ids[pos] == osmids
    if not found.all():
        rows = np.flatnonzero(~found)
        raise _rows_error(
            path,
            field,
            rows,
            osmids[rows].tolist(),
            "a node id that is not in the network",
            "Origins and destinations must be the network's source node ids (Network.node_osmid).",
        )
    return order[pos] if pos.size else np.zeros(0, dtype=np.int32)


def _short_exc(exc: BaseException) -> str:
    """An exception's message on one line, at most 300 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def read_trips_csv(path: str | os.PathLike[str], network: Network, *, duration_s: float | None = None) -> Trips:
    """Read a trip table.

    Parameters
    ----------
    path : str or path-like
        CSV with a header and the columns ``trip_id, origin, destination,
        depart_s`` (others are ignored).  ``origin``/``destination`` are the
        network's source node ids (``network.node_osmid``); ``depart_s`` is in
        seconds since scenario start.
    network : Network
        The road network the trips run on.
    duration_s : float, optional
        Scenario duration: trips departing at or after it are dropped (with a
        log message), as they would never start.

    Returns
    -------
    Trips
        Sorted by departure time (stable); may be empty.

    Raises
    ------
    DemandError
        Missing file, a file that cannot be read (a truncated or corrupted
        ``.gz``, not CSV, more than :data:`MAX_TRIP_ROWS` rows), missing
        columns, non-numeric or missing values, ids outside a signed 64-bit
        integer, unknown node ids, negative or non-finite ``depart_s``,
        duplicate ``trip_id`` or ``origin == destination``; the message names
        the file, the 1-based data row, its line in the file and the field.
    """
    path = Path(path)
    df = _read_table(path)
    trip_id = _numeric_column(path, df, "trip_id", integer=True)
    o_id = _numeric_column(path, df, "origin", integer=True)
    d_id = _numeric_column(path, df, "destination", integer=True)
    depart = _numeric_column(path, df, "depart_s", integer=False)
    _check_departures(path, depart)
    _check_unique_ids(path, trip_id)
    same = o_id == d_id
    if same.any():
        rows = np.flatnonzero(same)
        raise _rows_error(
            path,
            "destination",
            rows,
            d_id[rows].tolist(),
            "the origin node as destination",
            "A trip must go somewhere else than where it starts.",
        )
    sorted_ids, order = _node_lookup(network)
    origin = _map_nodes(path, "origin", o_id, sorted_ids, order)
    destination = _map_nodes(path, "destination", d_id, sorted_ids, order)

    if duration_s is not None:
        late = depart >= float(duration_s)
        if late.any():
            logger.warning(
                "%s: dropped %d trip(s) departing at or after the scenario end (%g s)",
                path,
                int(late.sum()),
                float(duration_s),
            )
            keep = ~late
            trip_id, origin, destination, depart = trip_id[keep], origin[keep], destination[keep], depart[keep]
    return _make_trips(trip_id, origin, destination, depart)


def _read_table(path: Path) -> pd.DataFrame:
    """The trips file as a table with the required columns and no blank rows (trailing blank lines dropped)."""
    try:
        is_file = path.is_file()
    except (OSError, ValueError) as exc:
        raise DemandError(f"trips file {str(path)[:300]!r} cannot be looked at: {exc}") from None
    if not is_file:
        raise DemandError(f"trips file {str(path)!r} does not exist (or is not a file).")
    try:
        # keep blank lines as all-NaN rows so that row positions map to file lines; at
        # most MAX_TRIP_ROWS + 1 rows are read, so a huge table costs no more than that
        df = pd.read_csv(path, skip_blank_lines=False, skipinitialspace=True, nrows=MAX_TRIP_ROWS + 1)
    except pd.errors.EmptyDataError:
        raise DemandError(
            f"trips file {str(path)!r} is empty: expected a header line with the columns {', '.join(_COLUMNS)}."
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as exc:
        raise DemandError(f"trips file {str(path)!r} could not be parsed as CSV: {_short_exc(exc)}") from None
    except (EOFError, zlib.error) as exc:  # a truncated or corrupted .gz/.bz2/.xz/.zip
        raise DemandError(
            f"trips file {str(path)!r} is truncated or corrupted (a compressed file that "
            f"does not end where it should): {_short_exc(exc)}"
        ) from None
    except (OSError, ValueError, OverflowError, MemoryError) as exc:
        raise DemandError(f"trips file {str(path)!r} could not be read: {_short_exc(exc)}") from None
    if len(df) > MAX_TRIP_ROWS:
        raise DemandError(
            f"trips file {str(path)!r} has more than {MAX_TRIP_ROWS:,} rows; "
            f"a trips table may have at most {MAX_TRIP_ROWS:,}."
        )
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in _COLUMNS if c not in df.columns]
    if missing:
        raise DemandError(
            f"trips file {str(path)!r} lacks the column(s) {', '.join(missing)} "
            f"(line 1 has: {', '.join(map(str, df.columns)) or 'nothing'}); "
            f"the required columns are {', '.join(_COLUMNS)}."
        )
    blank = df.isna().all(axis=1).to_numpy()
    if blank.any():
        # blank lines: tolerated at the end, reported elsewhere
        last_data = np.flatnonzero(~blank)
        inner = np.flatnonzero(blank[: (last_data[-1] + 1) if last_data.size else 0])
        if inner.size:
            raise DemandError(f"trips file {str(path)!r}: blank line(s) inside the table at {_where(inner)}.")
        df = df.iloc[: (last_data[-1] + 1) if last_data.size else 0]
    return df


def _check_departures(path: Path, depart: np.ndarray) -> None:
    bad = ~np.isfinite(depart) | (depart < 0)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise _rows_error(
            path,
            "depart_s",
            rows,
            depart[rows].tolist(),
            "a negative or infinite departure time",
            "Departure times are seconds since scenario start, >= 0.",
        )


def _check_unique_ids(path: Path, trip_id: np.ndarray) -> None:
    if not trip_id.size:
        return
    order = np.argsort(trip_id, kind="stable")
    ids = trip_id[order]
    starts = np.r_[True, ids[1:] != ids[:-1]]
    if starts.all():
        return
    first_of_group = order[starts]
    group = np.cumsum(starts) - 1
    later = ~starts
    rows, firsts = order[later], first_of_group[group[later]]
    by_row = np.argsort(rows, kind="stable")
    rows, firsts = rows[by_row], firsts[by_row]
    hint = "; ".join(
        f"trip_id {int(trip_id[r])} at row {r + 1} (line {r + 2}) was first used at row {f + 1} (line {f + 2})"
        for r, f in zip(rows[:_SHOW], firsts[:_SHOW], strict=True)
    )
    raise _rows_error(path, "trip_id", rows, trip_id[rows].tolist(), "a duplicate trip id", hint + ".")


def write_trips_csv(trips: Trips, network: Network, path: str | os.PathLike[str]) -> None:
    """Write ``trips`` as a CSV that :func:`read_trips_csv` reads back unchanged.

    Origins and destinations are written as the network's source node ids;
    ``depart_s`` keeps full precision.  The file is written atomically (a
    temporary file renamed into place).

    Parameters
    ----------
    trips : Trips
        The trips to write.
    network : Network
        The network whose ``node_osmid`` the dense indices refer to.
    path : str or path-like
        Destination file.
    """
    path = Path(path)
    ids = np.asarray(network.node_osmid, dtype=np.int64)
    n = ids.shape[0]
    for field in ("origin", "destination"):
        a = np.asarray(getattr(trips, field))
        if a.size and (a.min() < 0 or a.max() >= n):
            raise DemandError(f"write_trips_csv: trips.{field} has node indices outside 0..{n - 1}")
    df = pd.DataFrame(
        {
            "trip_id": np.asarray(trips.trip_id, dtype=np.int64),
            "origin": ids[np.asarray(trips.origin, dtype=np.int64)],
            "destination": ids[np.asarray(trips.destination, dtype=np.int64)],
            "depart_s": np.asarray(trips.depart_s, dtype=np.float64),
        }
    )
    with atomic_open(path, "w", newline="") as fh:
        df.to_csv(fh, index=False, float_format=None)


# ---------------------------------------------------------------------------
# gravity model
# ---------------------------------------------------------------------------


def _arg_error(name: str, problem: str) -> DemandError:
    return DemandError(f"gravity_trips: argument {name!r} {problem}.")


def _vec(name: str, value: ArrayLike, n: int | None, kind: str) -> np.ndarray:
    a = np.asarray(value)
    if a.ndim != 1:
        raise _arg_error(name, f"must be 1-D, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise _arg_error(name, f"must have {n} entries, got {a.shape[0]}")
    if a.size and a.dtype.kind not in kind:
        raise _arg_error(name, f"must be {'integer' if kind == 'iu' else 'numeric'}, got dtype {a.dtype}")
    if kind != "iu" and a.size and not np.isfinite(a.astype(np.float64)).all():
        raise _arg_error(name, "must be finite everywhere")
    return a


def _furness(f: np.ndarray, prod: np.ndarray, attr: np.ndarray, *, iters: int = 500, tol: float = 1e-10) -> np.ndarray:
    """Balance ``T = a_i * f_ij * b_j`` to row sums ``prod`` and column sums ``attr``.

    Ends with a row step, so the productions are matched exactly (where the
    row has any feasible destination); the attractions to within ``tol``
    (relative) when the problem is feasible, as close as it gets otherwise.
    """
    b = np.ones(attr.shape[0])
    a = np.zeros(prod.shape[0])
    for _ in range(iters):
        fb = f @ b
        a = np.divide(prod, fb, out=np.zeros_like(prod), where=fb > 0)
        fa = f.T @ a
        col = b * fa
        if np.all(np.abs(col - attr) <= tol * max(attr.sum(), 1.0)):
            break
        b = np.divide(attr, fa, out=np.zeros_like(attr), where=fa > 0)
    fb = f @ b
    a = np.divide(prod, fb, out=np.zeros_like(prod), where=fb > 0)
    od: np.ndarray = a[:, None] * f * b[None, :]
    return od


def _departures(rng: np.random.Generator, n: int, start_s: float, duration_s: float, profile: np.ndarray) -> np.ndarray:
    """``n`` departure times (s since scenario start) following a daily profile."""
    bins = profile.shape[0]
    bin_s = _DAY_S / bins
    end = start_s + duration_s
    k0 = int(np.floor(start_s / bin_s))
    k1 = int(np.ceil(end / bin_s))
    k = np.arange(k0, max(k1, k0 + 1))
    seg_lo = np.maximum(k * bin_s, start_s)
    seg_hi = np.minimum((k + 1) * bin_s, end)
    length = np.maximum(seg_hi - seg_lo, 0.0)
    weight = profile[k % bins] * length
    total = weight.sum()
    if not total > 0:
        raise _arg_error("profile", "gives zero weight to every hour of the simulated window")
    cdf = np.cumsum(weight / total)
    cdf[-1] = 1.0
    seg = np.searchsorted(cdf, rng.random(n), side="right")
    seg = np.minimum(seg, k.size - 1)
    t = seg_lo[seg] + rng.random(n) * length[seg]
    # clock time -> scenario time; guard the open upper end against rounding
    out: np.ndarray = np.minimum(t - start_s, np.nextafter(duration_s, 0.0))
    return out


def _zone_args(
    node_zone: ArrayLike,
    residents: ArrayLike,
    jobs: ArrayLike,
    zone_x: ArrayLike,
    zone_y: ArrayLike,
    beta_per_km: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Checked zone inputs of the gravity model."""
    nz = _vec("node_zone", node_zone, None, "iu")
    res = _vec("residents", residents, None, "iu")
    z = res.shape[0]
    job = _vec("jobs", jobs, z, "iu")
    zx = _vec("zone_x", zone_x, z, "iuf").astype(np.float64)
    zy = _vec("zone_y", zone_y, z, "iuf").astype(np.float64)
    if nz.size and (nz.min() < -1 or nz.max() >= z):
        raise _arg_error("node_zone", f"must hold zone indices 0..{z - 1} or -1, found {nz.min()}..{nz.max()}")
    if res.size and res.min() < 0:
        raise _arg_error("residents", "must be >= 0")
    if job.size and job.min() < 0:
        raise _arg_error("jobs", "must be >= 0")
    if not (np.isfinite(beta_per_km) and beta_per_km >= 0):
        raise _arg_error("beta_per_km", f"must be a finite number >= 0, got {beta_per_km!r}")
    return nz, res, job, zx, zy


def _gravity_od(
    count: np.ndarray, res: np.ndarray, job: np.ndarray, zx: np.ndarray, zy: np.ndarray, beta_per_km: float
) -> np.ndarray:
    """Balanced zone-to-zone shares (summing to 1) for zones with ``count`` nodes each."""
    z = res.shape[0]
    # impedance between centroids; a zone needs a node to send/receive, two for internal trips
    dx = zx[:, None] - zx[None, :]
    dy = zy[:, None] - zy[None, :]
    d_km = np.hypot(dx, dy) / 1000.0
    if z > 1:
        off = d_km + np.diag(np.full(z, np.inf))
        np.fill_diagonal(d_km, 0.5 * off.min(axis=1))
    f = np.exp(-beta_per_km * d_km)
    has = count > 0
    f[~has, :] = 0.0
    f[:, ~has] = 0.0
    f[np.diag_indices(z)] *= count >= 2
    prod = np.where(has, res, 0).astype(np.float64)
    attr = np.where(has, job, 0).astype(np.float64)
    if prod.sum() <= 0 or attr.sum() <= 0:
        raise DemandError(
            "gravity_trips: no trips can be made: no zone with nodes has residents"
            if prod.sum() <= 0
            else "gravity_trips: no trips can be made: no zone with nodes has jobs"
        )
    prod *= 1.0 / prod.sum()
    attr *= 1.0 / attr.sum()
    od = _furness(f, prod, attr)
    total = od.sum()
    if not total > 0:
        raise DemandError(
            "gravity_trips: no zone pair can hold a trip (zones with residents reach no zone "
            "with jobs, or the only candidates are single-node zones)"
        )
    shares: np.ndarray = od / total
    return shares


def gravity_shares(
    *,
    node_zone: ArrayLike,
    residents: ArrayLike,
    jobs: ArrayLike,
    zone_x: ArrayLike,
    zone_y: ArrayLike,
    beta_per_km: float = 0.25,
) -> np.ndarray:
    """The share of :func:`gravity_trips`' trips between each pair of zones.

    Parameters are those of :func:`gravity_trips`; returns ``float[n_zones, n_zones]``
    (origin zone x destination zone) summing to 1, the probabilities its multinomial
    draw uses.  Comparing two calls tells how a change of residents or jobs moves the
    demand between each pair (the twin-versus-truth experiment's "true" factors).
    """
    nz, res, job, zx, zy = _zone_args(node_zone, residents, jobs, zone_x, zone_y, beta_per_km)
    count = np.bincount(nz[nz >= 0], minlength=res.shape[0]).astype(np.int64)
    return _gravity_od(count, res, job, zx, zy, beta_per_km)


def gravity_trips(  # noqa: PLR0913 (keyword-only: the zones, the nodes, the generator and the demand's settings)
    *,
    node_zone: np.ndarray,
    residents: np.ndarray,
    jobs: np.ndarray,
    zone_x: np.ndarray,
    zone_y: np.ndarray,
    node_x: np.ndarray,
    node_y: np.ndarray,
    rng: np.random.Generator,
    total_trips: int,
    duration_s: float,
    start_s: float = 0.0,
    beta_per_km: float = 0.25,
    profile: np.ndarray | None = None,
) -> Trips:
    """Synthesise trips with a doubly-constrained gravity model.

    Zone ``i`` produces trips in proportion to its residents and zone ``j``
    attracts them in proportion to its jobs;
    ``T_ij = a_i P_i b_j A_j exp(-beta * d_ij)`` with ``d_ij`` the centroid
    distance in km (intra-zone: half the distance to the nearest other
    centroid, i.e. half a typical zone size), balanced by Furness iterations.
    The shares are turned into exactly ``total_trips`` trips with one
    multinomial draw.  Origin and destination nodes are drawn uniformly among
    each zone's nodes (never the same node: intra-zone trips need a zone with
    two nodes); departure times follow the time-of-day ``profile``.

    Parameters
    ----------
    node_zone : int[n_nodes]
        Zone of each node, ``-1`` for none (such nodes are never used).
    residents, jobs : int[n_zones]
        Non-negative counts per zone.
    zone_x, zone_y : float[n_zones]
        Zone centroids, metres (projected).
    node_x, node_y : float[n_nodes]
        Node coordinates, metres (only their count is used; kept for
        symmetry with the network).
    rng : numpy.random.Generator
        The only source of randomness: the same generator state gives the
        same trips.
    total_trips : int
        Number of trips to make, ``>= 0``.
    duration_s : float
        Length of the simulated window, ``> 0`` s.
    start_s : float
        Clock time of day at scenario start, s after midnight.
    beta_per_km : float
        Distance decay, ``>= 0`` per km.
    profile : array of float, optional
        Relative trip rate over a day in equal bins (24 values: hourly; 96:
        quarter-hourly); default :data:`DEFAULT_HOURLY_PROFILE`.  The window
        wraps around midnight.

    Returns
    -------
    Trips
        ``total_trips`` trips with ids ``0..total_trips-1`` in departure order,
        ``depart_s`` in ``[0, duration_s)``.

    Raises
    ------
    DemandError
        Bad argument shapes or values, or no zone pair can hold a trip.
    """
    if not isinstance(rng, np.random.Generator):
        raise _arg_error("rng", f"must be a numpy.random.Generator, got {type(rng).__name__}")
    nz, res, job, zx, zy = _zone_args(node_zone, residents, jobs, zone_x, zone_y, beta_per_km)
    _vec("node_x", node_x, nz.shape[0], "iuf")
    _vec("node_y", node_y, nz.shape[0], "iuf")
    prof = _check_trip_args(total_trips, duration_s, start_s, profile)
    total_trips = int(total_trips)
    if total_trips == 0:
        return Trips(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float64))
    origin, destination = _draw_nodes(rng, nz, res, job, zx, zy, beta_per_km, total_trips)
    depart = _departures(rng, total_trips, float(start_s), float(duration_s), prof)
    order = np.argsort(depart, kind="stable")
    return Trips(
        trip_id=np.arange(total_trips, dtype=np.int64),
        origin=np.ascontiguousarray(origin[order], dtype=np.int32),
        destination=np.ascontiguousarray(destination[order], dtype=np.int32),
        depart_s=np.ascontiguousarray(depart[order]),
    )


def _check_trip_args(total_trips: int, duration_s: float, start_s: float, profile: np.ndarray | None) -> np.ndarray:
    """Check :func:`gravity_trips`' scalar arguments; return the profile as float64."""
    if isinstance(total_trips, (bool, np.bool_)) or not isinstance(total_trips, (int, np.integer)) or total_trips < 0:
        raise _arg_error("total_trips", f"must be an integer >= 0, got {total_trips!r}")
    if not (np.isfinite(duration_s) and duration_s > 0):
        raise _arg_error("duration_s", f"must be a finite number > 0, got {duration_s!r}")
    if not np.isfinite(start_s):
        raise _arg_error("start_s", f"must be finite, got {start_s!r}")
    prof = np.asarray(DEFAULT_HOURLY_PROFILE if profile is None else profile, dtype=np.float64)
    if prof.ndim != 1 or prof.size == 0 or not np.isfinite(prof).all() or prof.min() < 0:
        raise _arg_error("profile", "must be a non-empty 1-D array of finite weights >= 0")
    return prof


def _draw_nodes(
    rng: np.random.Generator,
    nz: np.ndarray,
    res: np.ndarray,
    job: np.ndarray,
    zx: np.ndarray,
    zy: np.ndarray,
    beta_per_km: float,
    total_trips: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Origin and destination nodes of ``total_trips`` trips: zone pairs from one multinomial
    draw over the gravity shares, then nodes uniformly within each zone (never the same node).
    """
    z = res.shape[0]
    # nodes grouped by zone
    used = np.flatnonzero(nz >= 0)
    zone_nodes = used[np.argsort(nz[used], kind="stable")].astype(np.int32)
    count = np.bincount(nz[used], minlength=z).astype(np.int64)
    first = np.zeros(z, dtype=np.int64)
    np.cumsum(count[:-1], out=first[1:])

    od = _gravity_od(count, res, job, zx, zy, beta_per_km)
    cells = rng.multinomial(total_trips, od.ravel())
    cell = np.repeat(np.arange(z * z, dtype=np.int64), cells)
    oz, dz = np.divmod(cell, z)

    origin = zone_nodes[first[oz] + rng.integers(0, count[oz])]
    destination = zone_nodes[first[dz] + rng.integers(0, count[dz])]
    same = np.flatnonzero(origin == destination)
    while same.size:  # only intra-zone trips in zones with >= 2 nodes land here
        zs = dz[same]
        destination[same] = zone_nodes[first[zs] + rng.integers(0, count[zs])]
        same = same[origin[same] == destination[same]]
    return origin, destination
