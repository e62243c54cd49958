"""Road shapes for maps: the links' recorded shapes (``link_shape_indptr``, ``shape_lon``,
``shape_lat`` in ``results.nc``; issue 13) in the map's metric frame.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["link_polylines"]

_M_PER_DEG = 111_320.0


def link_polylines(ds: xr.Dataset, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> np.ndarray | None:
    """Each link's line as an ``(n, 2)`` array in the map frame, or None when the run has no shapes.

    Parameters
    ----------
    ds : xarray.Dataset
        A run's results, with ``link_x0``/``link_y0`` (the links' upstream ends).
    x0, y0, x1, y1 : numpy.ndarray
        Where the map draws each link's ends (e.g. moved aside so both directions show);
        the shape is moved with them and its ends put there.

    Returns
    -------
    numpy.ndarray or None
        An object array of ``(n, 2)`` float arrays, one per link (its straight line's end
        points when its shape has only two), or None.
    """
    if "link_shape_indptr" not in ds or "shape_lon" not in ds:
        return None
    ptr = np.asarray(ds["link_shape_indptr"].values, np.int64)
    n = ds.sizes.get("link", 0)
    if ptr.size != n + 1:
        return None
    lon = np.asarray(ds["shape_lon"].values, np.float64)
    lat = np.asarray(ds["shape_lat"].values, np.float64)
    dx = x0 - np.asarray(ds["link_x0"].values, np.float64)
    dy = y0 - np.asarray(ds["link_y0"].values, np.float64)
    bx = np.asarray(ds["link_x0"].values, np.float64)
    by = np.asarray(ds["link_y0"].values, np.float64)
    out = np.empty(n, dtype=object)
    for i in range(n):
        lo, la = lon[ptr[i] : ptr[i + 1]], lat[ptr[i] : ptr[i + 1]]
        m_lon = _M_PER_DEG * np.cos(np.radians(la[0]))
        # a local fit around the link's upstream node: metres east and north of it
        line = np.column_stack([bx[i] + dx[i] + (lo - lo[0]) * m_lon, by[i] + dy[i] + (la - la[0]) * _M_PER_DEG])
        line[0] = (x0[i], y0[i])
        line[-1] = (x1[i], y1[i])
        out[i] = line
    return out
