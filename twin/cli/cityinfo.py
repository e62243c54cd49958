"""``twin city info``'s lists: the zones, named places and facilities of a city (issue 13, part 4)."""

from __future__ import annotations

import numpy as np
from rich.table import Table

__all__ = ["detail_tables"]


def _more(table: Table, shown: int, total: int, what: str) -> None:
    if total > shown:
        table.caption = f"… and {total - shown:,} more {what} (--all lists every one)"


def detail_tables(city, *, limit: int | None = 20) -> list[Table]:
    """Tables of the city's zones, facilities and named places.

    Parameters
    ----------
    city : City
        A loaded city.
    limit : int or None
        Rows per table (``None``: all).

    Returns
    -------
    list of rich.table.Table
        Zones (name, residents, jobs, nodes), facilities (kind, name, node id,
        capacity) and named places (name, links or nodes, road names), each when
        the city has any.
    """
    net = city.network
    z = city.zones
    n = z.n_zones if limit is None else min(limit, z.n_zones)
    out = []
    if z.n_zones:
        t = Table(title=f"zones ({z.n_zones:,})")
        for col in ("zone", "residents", "jobs", "nodes"):
            t.add_column(col, justify="left" if col == "zone" else "right")
        nodes = np.bincount(z.node_zone[z.node_zone >= 0], minlength=z.n_zones)
        for i in range(n):
            t.add_row(str(z.name[i]), f"{int(z.residents[i]):,}", f"{int(z.jobs[i]):,}", f"{int(nodes[i]):,}")
        _more(t, n, z.n_zones, "zones")
        out.append(t)
    fac = city.facilities
    if fac:
        t = Table(title=f"facilities ({len(fac):,})")
        for col in ("kind", "name", "node", "capacity"):
            t.add_column(col, justify="right" if col in ("node", "capacity") else "left")
        shown = fac if limit is None else fac[:limit]
        for f in shown:
            t.add_row(f.kind, f.name, str(int(net.node_osmid[f.node])), f"{int(f.capacity):,}")
        _more(t, len(shown), len(fac), "facilities")
        out.append(t)
    if city.places:
        t = Table(title=f"named places ({len(city.places):,})")
        for col in ("name", "links", "roads"):
            t.add_column(col, justify="right" if col == "links" else "left")
        names = sorted(city.places)
        shown_names = names if limit is None else names[:limit]
        for name in shown_names:
            ids = np.asarray(city.places[name], np.int64).ravel()
            ok = ids[(ids >= 0) & (ids < net.n_links)]
            roads = ", ".join(sorted({str(r) for r in net.link_name[ok] if str(r)}))[:60]
            t.add_row(name, f"{ids.size:,}", roads)
        _more(t, len(shown_names), len(names), "places")
        out.append(t)
    return out
