"""Plain-python references for :mod:`kernels.routing` (O(n^2) Dijkstra, no heap)."""

from __future__ import annotations

import numpy as np

__all__ = ["ref_tree_to", "ref_tree_from", "ref_route_table", "ref_path_links"]


def _dijkstra(start: int, n: int, adj: list[list[tuple[int, float, int]]]) -> tuple[np.ndarray, np.ndarray]:
    dist = np.full(n, np.inf)
    link_of = np.full(n, -1, dtype=np.int32)
    done = np.zeros(n, dtype=bool)
    dist[start] = 0.0
    for _ in range(n):
        cand = np.where(done, np.inf, dist)
        u = int(np.argmin(cand)) if n else 0
        if not np.isfinite(cand[u]):
            break
        done[u] = True
        for v, w, link in adj[u]:
            if not np.isfinite(w):
                continue
            if dist[u] + w < dist[v]:
                dist[v] = dist[u] + w
                link_of[v] = link
    return dist, link_of


def ref_tree_to(
    dest: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray, n_nodes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Travel time from every node to ``dest`` and the first link to take."""
    adj: list[list[tuple[int, float, int]]] = [[] for _ in range(n_nodes)]
    for link, (s, d) in enumerate(zip(src.tolist(), dst.tolist(), strict=False)):
        adj[d].append((s, float(weight[link]), link))
    return _dijkstra(dest, n_nodes, adj)


def ref_tree_from(
    orig: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray, n_nodes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Travel time from ``orig`` to every node and each node's predecessor link."""
    adj: list[list[tuple[int, float, int]]] = [[] for _ in range(n_nodes)]
    for link, (s, d) in enumerate(zip(src.tolist(), dst.tolist(), strict=False)):
        adj[s].append((d, float(weight[link]), link))
    return _dijkstra(orig, n_nodes, adj)


def ref_route_table(
    dests: np.ndarray, src: np.ndarray, dst: np.ndarray, weight: np.ndarray, n_nodes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of :func:`ref_tree_to` for each destination."""
    k = len(dests)
    nxt = np.full((k, n_nodes), -1, dtype=np.int32)
    dist = np.full((k, n_nodes), np.inf)
    for r, d in enumerate(dests):
        dist[r], nxt[r] = ref_tree_to(int(d), src, dst, weight, n_nodes)
    return nxt, dist


def ref_path_links(orig: int, next_link: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Follow ``next_link`` from ``orig`` (at most ``n_nodes`` steps)."""
    out = []
    node = orig
    for _ in range(len(next_link)):
        link = int(next_link[node])
        if link < 0:
            break
        out.append(link)
        node = int(dst[link])
    return np.asarray(out, dtype=np.int32)
