"""The Kalman filter's observation operator: where the ensemble's pool trips cross the links.

:class:`Crossings` routes each pool trip once, when it departs, over the members'
current travel times with the traffic model's own route choice
(:func:`kernels.assimilation.sensor_crossings`), and keeps which links it crosses,
with what probability and when.  From those crossings come the filter's operator
(a sensor count's derivative by the demand factors), the prediction of a count at
the current factors, and the shift of every link's simulated count to them (what
the issued estimates carry).  :func:`count_band` is the predictive band of a link's
count from the members' counts.  Used by :mod:`twin.live.ensemble`.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import nbinom, poisson

__all__ = ["Crossings", "count_band"]


class Crossings:
    """The Kalman filter's observation operator: which links each pool trip crosses, when,
    and with what probability.

    Trips are routed (once, when they depart) over the members' current link travel
    times with the traffic model's own route choice
    (:func:`kernels.assimilation.sensor_crossings`), so the expected count of sensor
    ``s`` over ``(t0, t1]`` is ``sum_j share_js p_j`` over the crossings in that window,
    with ``p_j = min(1, exp(level + zone[o_j] + dest[d_j]) / pool_factor)`` the
    probability that pool trip ``j`` is released.  Its derivative by the log factors is
    the operator ``H``: the counts' attribution to origin zones, destination zones and
    the level -- full rank, whatever the ensemble size, and aware of the lag between a
    trip's release and its passage over a detector.
    """

    def __init__(self, pool, n_zones: int, *, destination_factors: bool) -> None:
        self.origin, self.destination, self.depart = pool.origin, pool.destination, pool.depart
        self.zone, self.dest_zone = pool.zone, pool.dest_zone
        self.pool_factor = pool.pool_factor
        self.nz = n_zones
        self.dest = destination_factors
        self.dests, self.row_of = np.unique(self.destination, return_inverse=True)
        self.cursor = 0  # pool trips before this one are routed
        n_links = pool.twin.city.network.n_links
        #: crossings are kept for every link (the kernel's "sensor" of a link is the link
        #: itself): those of sensor links for the operator, the rest for the flow shift
        self.link_ids = np.arange(n_links, dtype=np.int64)
        self.is_sensor = np.zeros(n_links, bool)
        self.ev_trip = np.zeros(0, np.int64)
        self.ev_link = np.zeros(0, np.int64)
        self.ev_share = np.zeros(0)
        self.ev_t = np.zeros(0)

    def observe(self, links) -> None:
        """These links carry a sensor (their crossings are kept longer, for late counts)."""
        self.is_sensor[np.asarray(list(links), np.int64)] = True

    def advance(
        self,
        now: float,
        *,
        weight,
        graph,
        is_open,
        tol: float,
        scale: float = 0.0,
        keep_s: float = 3600.0,
        keep_other_s: float = 900.0,
    ) -> None:
        """Route the pool trips departed before ``now``; forget crossings older than ``keep_s``
        on sensor links and ``keep_other_s`` on the others.
        """
        from kernels.assimilation import sensor_crossings
        from kernels.routing import compute_route_table

        hi = int(np.searchsorted(self.depart, now, side="left"))
        old = (self.ev_t > now - keep_other_s) | ((self.ev_t > now - keep_s) & self.is_sensor[self.ev_link])
        self.ev_trip, self.ev_link = self.ev_trip[old], self.ev_link[old]
        self.ev_share, self.ev_t = self.ev_share[old], self.ev_t[old]
        if hi <= self.cursor:
            return
        sl = slice(self.cursor, hi)
        rows = np.unique(self.row_of[sl])
        _, pot_rows = compute_route_table(graph, self.dests[rows].astype(np.int32), weight)
        assert pot_rows is not None  # with_dist (the default) returns the distances
        pot = np.full((self.dests.size, pot_rows.shape[1]), np.inf)
        pot[rows] = pot_rows
        trip, link, share, dt = sensor_crossings(
            graph, self.origin[sl], self.row_of[sl], pot, weight, is_open, self.link_ids, tol=tol, scale=scale
        )
        trip = trip + self.cursor
        self.ev_trip = np.concatenate([self.ev_trip, trip])
        self.ev_link = np.concatenate([self.ev_link, link])
        self.ev_share = np.concatenate([self.ev_share, share])
        self.ev_t = np.concatenate([self.ev_t, self.depart[trip] + dt])
        self.cursor = hi

    def operator(self, windows, theta, p_used, *, hour=None, start_s: float = 0.0, prev_shift: float = 0.0):
        """``H`` (observations x parameters) at the members' ``theta``, the shift of each
        predicted count from the factors the trips were released with to the current ones,
        and the expected counts (the members' mean) at the current factors.

        ``windows``: ``(link, t0, t1)`` per observation; ``p_used``: each member's release
        probabilities of the pool trips.  With an hourly level (``hour``: the clock hour of
        ``theta``'s level), trips that departed before that hour load on the previous hour's
        level (one more column, last), which is ``prev_shift`` above the current one.
        """
        nz, pf = self.nz, self.pool_factor
        m, p = len(windows), theta.shape[1]
        H = np.zeros((m, p + (hour is not None)))
        shift = np.zeros(m)
        expect = np.zeros(m)
        if m == 0 or self.ev_t.size == 0:
            return H, shift, expect
        sens = np.flatnonzero(self.is_sensor[self.ev_link])
        order = sens[np.lexsort((self.ev_t[sens], self.ev_link[sens]))]
        lk, tt = self.ev_link[order], self.ev_t[order]
        for j, (link, t0, t1) in enumerate(windows):
            a = np.searchsorted(lk, link, side="left")
            b = np.searchsorted(lk, link, side="right")
            lo = a + np.searchsorted(tt[a:b], t0, side="right")
            hi = a + np.searchsorted(tt[a:b], t1, side="right")
            e = order[lo:hi]
            if e.size == 0:
                continue
            trips = self.ev_trip[e]
            zo, zd = self.zone[trips], self.dest_zone[trips]
            lp, before = self._log_p(theta, trips, hour=hour, start_s=start_s, prev_shift=prev_shift)
            p_now = np.minimum(np.exp(lp) / pf, 1.0)
            w = self.ev_share[e] * np.where(np.exp(lp) / pf < 1.0, p_now, 0.0).mean(axis=0)
            used = np.nanmean(np.stack([pu[trips] for pu in p_used]), axis=0)
            expect[j] = float(np.sum(self.ev_share[e] * p_now.mean(axis=0)))
            shift[j] = expect[j] - float(np.sum(self.ev_share[e] * np.nan_to_num(used)))
            np.add.at(H[j], zo, w)
            if hour is None:
                H[j, nz] += w.sum()
            else:
                H[j, nz] += w[~before].sum()
                H[j, p] += w[before].sum()
            if self.dest:
                np.add.at(H[j], nz + 1 + zd, w)
        return H, shift, expect

    def _clock_hour(self, trips, start_s: float) -> np.ndarray:
        """Clock hour (since the start's midnight) in which each pool trip departs."""
        return np.floor((start_s + self.depart[trips]) / 3600.0 + 1e-9)

    def _log_p(self, theta, trips, *, hour, start_s: float, prev_shift: float):
        """Log release rate (members x trips) of pool trips at the members' ``theta``, and
        whether each departed before the clock hour ``hour`` of ``theta``'s level (it then
        loads on the previous hour's level, ``prev_shift`` above the current one).
        """
        nz = self.nz
        lp = theta[:, self.zone[trips]] + theta[:, nz][:, None]
        before = np.zeros(trips.size, bool)
        if hour is not None:
            before = self._clock_hour(trips, start_s) < hour
            lp = lp + np.where(before, prev_shift, 0.0)
        if self.dest:
            lp = lp + theta[:, nz + 1 + self.dest_zone[trips]]
        return lp, before

    def flow_shift(
        self,
        t0: float,
        t1: float,
        theta,
        p_used,
        *,
        n_links: int,
        hour=None,
        start_s: float = 0.0,
        prev_shift: float = 0.0,
    ) -> np.ndarray:
        """Each member's expected change of every link's count over ``(t0, t1]`` had the
        trips crossing it then been released at the current factors (members x links).

        A member's simulated count answers to the factors its trips were released with,
        minutes before the observations that corrected them; this moves it to the
        filter's current estimate.  Trips that departed before the previous clock hour
        keep their count (the state no longer holds their hour's level).
        """
        out = np.zeros((theta.shape[0], n_links))
        e = np.flatnonzero((self.ev_t > t0) & (self.ev_t <= t1))
        if e.size == 0:
            return out
        trips = self.ev_trip[e]
        if hour is not None:
            keep = self._clock_hour(trips, start_s) >= hour - 1
            e, trips = e[keep], trips[keep]
        lp, _ = self._log_p(theta, trips, hour=hour, start_s=start_s, prev_shift=prev_shift)
        used = np.stack([pu[trips] for pu in p_used])
        delta = np.where(np.isfinite(used), np.minimum(np.exp(lp) / self.pool_factor, 1.0) - used, 0.0)
        delta *= self.ev_share[e]
        link = self.ev_link[e]
        for i in range(theta.shape[0]):
            out[i] = np.bincount(link, weights=delta[i], minlength=n_links)
        return out


def count_band(counts: np.ndarray, *, model_cv: float) -> tuple[np.ndarray, np.ndarray]:
    """5th and 95th percentiles of the count a link will show, from the members' counts
    (members x links).

    The count is Poisson around its expected value, which is uncertain: the spread of
    the members' expected counts (their counts' variance less its Poisson part), the
    error of their mean, and the model's relative error ``model_cv``.  A Poisson count
    whose mean is gamma-distributed with that variance is negative binomial.
    """
    n = counts.shape[0]
    mu = counts.mean(axis=0)
    v = counts.var(axis=0, ddof=1) if n > 1 else np.zeros_like(mu)
    extra = np.maximum(v - mu, 0.0) + v / n + (model_cv * mu) ** 2
    lo, hi = np.zeros_like(mu), np.zeros_like(mu)
    pois = (mu > 0) & (extra <= 1e-9 * np.maximum(mu, 1.0))
    nb = (mu > 0) & ~pois
    if pois.any():
        lo[pois], hi[pois] = poisson.ppf(0.05, mu[pois]), poisson.ppf(0.95, mu[pois])
    if nb.any():
        r = mu[nb] ** 2 / extra[nb]
        q = r / (r + mu[nb])
        lo[nb], hi[nb] = nbinom.ppf(0.05, r, q), nbinom.ppf(0.95, r, q)
    return lo, hi
