"""The persons' travel-time skim: car travel times from every node to each zone's centroid.

:class:`CarSkim` (``pop.skims``) keeps the table the persons decide on and which
nodes the open roads still connect, and refreshes both from the traffic model's
current link weights: when the traffic model has re-routed, at most every
``skim_interval`` -- at once when links were closed or opened.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from kernels.routing import changed_links, route_table, stale_rows

if TYPE_CHECKING:
    from twin.traffic import TrafficModel

__all__ = ["CarSkim"]


class CarSkim:
    """Car travel times from every node to each zone's centroid, and the nodes' road components.

    Parameters
    ----------
    centroid : numpy.ndarray
        Each zone's centroid node (``-1``: a zone without one: its row stays ``inf``).
    n_nodes : int
        Nodes of the network.
    interval_s : float
        Least time between two refreshes while no link closes or opens, s.
    """

    def __init__(self, centroid: np.ndarray, n_nodes: int, *, interval_s: float) -> None:
        n_zones = centroid.shape[0]
        self.centroid = centroid
        self.n_nodes = n_nodes
        self.interval_s = interval_s
        #: ``[zone row, node]``: car travel time from the node to the zone's centroid, s (inf: unreachable)
        self.table = np.full((n_zones, n_nodes), np.inf)
        #: each zone's row in :attr:`table` (``-1``: none)
        self.row = np.where(centroid >= 0, np.arange(n_zones), -1).astype(np.int32)
        #: strongly connected component of each node over the open links (set by :meth:`refresh`)
        self.node_comp: np.ndarray | None = None
        #: the link weights of the last refresh, its time, and how many links were closed then
        self.weight: np.ndarray | None = None
        self.t = -math.inf
        self.n_closed = -1

    def refresh(self, traffic: TrafficModel, now: float, *, force: bool = False) -> None:
        """Bring the table up to the traffic model's current weights (when due, or ``force``).

        The centroids' rows in the traffic model's route table that are exact for
        the current weights (it has just re-routed towards them) are copied; of the
        others only those the changed weights make stale are computed here.
        """
        w = traffic.routes.weight
        if not force and w is self.weight:
            return
        closed = int(np.count_nonzero(np.isinf(w)))
        if not force and closed == self.n_closed and now - self.t < self.interval_s:
            return
        g = traffic.graph
        active = self.centroid >= 0
        # rows the traffic model has just brought up to date for these weights are copied, not recomputed
        rows, exact = traffic.current_rows(np.maximum(self.centroid, 0))
        ok = active & exact
        self.table[ok] = traffic.routes.pot[rows[ok]]
        active &= ~ok
        if active.any() and self.weight is not None:  # the rest are exact for the weights of the last refresh
            basis = self.weight[None, :]
            stale = np.zeros_like(active)
            stale_rows(
                g,
                self.table,
                w,
                changed_links(basis, w),
                active=active,
                row_basis=np.zeros(active.size, np.int64),
                basis_weights=basis,
                out=stale,
            )
            active = stale
        if active.any():
            route_table(
                g,
                np.maximum(self.centroid, 0),
                w,
                active=active,
                next_link_out=np.empty((0, self.n_nodes), np.int32),
                dist_out=self.table,
            )
        if closed != self.n_closed or self.node_comp is None:
            self.node_comp = _components(g.src, g.dst, w, self.n_nodes)
        self.weight = w
        self.t = now
        self.n_closed = closed


def _components(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, n: int) -> np.ndarray:
    """Strongly connected component of each node over the open links (finite weight)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    ok = np.isfinite(weight)
    g = csr_matrix((np.ones(int(ok.sum()), np.int8), (src[ok], dst[ok])), shape=(n, n))
    return connected_components(g, directed=True, connection="strong")[1].astype(np.int32)
