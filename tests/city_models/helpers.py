"""Shared helpers for the city_models tests."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, dijkstra

from city_models import make_network


def adjacency(net, drop=()):
    """Sparse length-weighted adjacency, optionally without some links."""
    keep = np.ones(net.n_links, dtype=bool)
    keep[np.asarray(list(drop), dtype=np.int64)] = False
    return sp.csr_matrix((net.length_m[keep], (net.src[keep], net.dst[keep])), shape=(net.n_nodes, net.n_nodes))


def distance(net, a, b, drop=()):
    return float(dijkstra(adjacency(net, drop), directed=True, indices=a)[b])


def n_strong(net):
    return connected_components(adjacency(net), directed=True, connection="strong")[0]


def tiny_network(nodes, links, **extra):
    """Network from ``nodes`` [(x, y)] and two-way ``links`` [(a, b)] (lengths from geometry)."""
    xy = np.asarray(nodes, dtype=float)
    src, dst = [], []
    for a, b in links:
        src += [a, b]
        dst += [b, a]
    src, dst = np.array(src), np.array(dst)
    length = np.hypot(*(xy[dst] - xy[src]).T)
    kw = dict(
        x=xy[:, 0],
        y=xy[:, 1],
        src=src,
        dst=dst,
        length_m=length,
        lanes=1.0,
        free_speed_mps=np.full(src.size, 10.0),
        link_kind=["residential"] * src.size,
    )
    kw.update(extra)
    return make_network(**kw)
