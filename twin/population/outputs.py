"""What the population records: persons by state and zone over time, trips, KPIs."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from kernels import choice as kc
from twin.population.triplog import TRIP_CANCELLED

__all__ = ["PopulationOutputs", "STATE_NAMES", "MODE_NAMES"]

STATE_NAMES: tuple[str, ...] = ("at_home", "at_activity", "travelling")
MODE_NAMES: tuple[str, ...] = ("car", "other")
_PURPOSES: tuple[str, ...] = ("home", "work", "school", "other", "evacuation")


if TYPE_CHECKING:
    from twin.population.component import PopulationComponent


def _var(dims, data, units: str, long_name: str) -> xr.Variable:
    return xr.Variable(dims, data, attrs={"units": units, "long_name": long_name})


class PopulationOutputs:
    """What a :class:`~twin.population.component.PopulationComponent` records (``pop.outputs``).

    It keeps the counts of persons where they rest, by zone and place, up to date
    as they arrive and leave, samples them at each output time, and turns the
    records into the run's variables and KPIs.

    Parameters
    ----------
    comp : PopulationComponent
        The population recorded.
    """

    def __init__(self, comp: PopulationComponent) -> None:
        self.comp = comp
        self.rec_time: list[float] = []
        self.rec_counts: list[np.ndarray] = []  # [n_zones + 1, 3] per sample; last row: persons at no zone
        # persons where they rest (home or activity), by zone and place, kept up to date as they arrive
        self.n_codes = (self.comp.zones.n_zones + 1) * 3
        self.rest_counts = np.zeros(self.n_codes, np.int64)
        self.count(np.arange(self.comp.people.n_persons))

    def _codes(self, node: np.ndarray, state: np.ndarray) -> np.ndarray:
        z = self.comp.node_zone[node].astype(np.int64)
        return np.where(z >= 0, z, self.comp.zones.n_zones) * 3 + state

    def count(self, persons: np.ndarray, sign: int = 1) -> None:
        """Add ``persons`` (``sign=-1``: remove them) to the counts where they rest."""
        codes = self._codes(self.comp.node[persons], self.comp.place[persons])
        self.rest_counts += sign * np.bincount(codes, minlength=self.n_codes)

    def uncount(self, persons: np.ndarray) -> None:
        """Remove ``persons`` from the counts where they rest (they leave)."""
        self.count(persons, -1)

    # ------------------------------------------------------------------ states
    def person_states(self, persons: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each person's state now (0 at home, 1 at an activity, 2 travelling) and zone (-1: none).

        A person is travelling from the departure time of a trip until its
        arrival (for drivers, the traffic model's arrival); before it they are
        where they set off from, after it where they went.  A traveller's zone
        is that of the link they drive on (their origin's while waiting to
        enter, or on foot or transit).
        """
        idx = np.arange(self.comp.people.n_persons) if persons is None else np.asarray(persons, np.int64)
        state = self.comp.place[idx].astype(np.int8)
        node = self.comp.node[idx].copy()
        moving = np.flatnonzero(self.comp.trip_mode[idx] >= 0)
        if moving.size:
            _, st, nd = self.comp.positions(idx[moving])
            state[moving] = st
            node[moving] = nd
        return state, self.comp.node_zone[node]

    def sample(self, t: float) -> None:
        """Persons by zone and state now: the resting counts, corrected for those with a trip."""
        counts = self.rest_counts.copy()
        p = self.comp.travelling
        if p.size:
            _, state, node = self.comp.positions()
            counts -= np.bincount(self._codes(self.comp.node[p], self.comp.place[p]), minlength=self.n_codes)
            counts += np.bincount(self._codes(node, state), minlength=self.n_codes)
        self.rec_time.append(float(t))
        self.rec_counts.append(counts.reshape(-1, 3).astype(np.int32))

    # ----------------------------------------------------------------- results
    def _zone_dim(self) -> str:
        return "zone" if self.comp.table.source == "city" else "pop_zone"

    def data_vars(self) -> dict[str, xr.Variable]:
        """The population's variables and coordinates for the run's Dataset."""
        zd = self._zone_dim()
        nz = self.comp.zones.n_zones
        nt = len(self.rec_time)
        counts = np.stack(self.rec_counts) if nt else np.zeros((0, nz + 1, 3), np.int32)
        out: dict[str, xr.Variable] = {
            "pop_at_home": _var(("time", zd), counts[:, :nz, 0], "1", "persons at home (in their home zone)"),
            "pop_at_activity": _var(("time", zd), counts[:, :nz, 1], "1", "persons at an activity away from home"),
            "pop_travelling": _var(
                ("time", zd), counts[:, :nz, 2], "1", "persons travelling (zone of the link driven, else of the origin)"
            ),
            "pop_state_total": _var(
                ("time", "person_state"),
                counts.sum(1).astype(np.int64),
                "1",
                "persons in each state, all zones and none",
            ),
            "pop_zone_persons": _var(
                (zd,), self.comp.people.zone_persons.astype(np.int64), "1", "synthesised residents"
            ),
            "pop_zone_households": _var(
                (zd,),
                np.bincount(self.comp.people.hh_zone, minlength=nz).astype(np.int64),
                "1",
                "synthesised households",
            ),
            "coord:person_state": _var(("person_state",), np.array(STATE_NAMES, dtype=str), "1", "person state"),
            "coord:purpose": _var(
                ("purpose",), np.array(_PURPOSES, dtype=str), "1", "trip purpose (activity at the destination)"
            ),
            "coord:mode": _var(
                ("mode",), np.array(MODE_NAMES, dtype=str), "1", "travel mode (other: transit, bike, walk)"
            ),
        }
        lg = self.comp.log
        made = lg["status"] != TRIP_CANCELLED
        times = np.asarray(self.rec_time)
        dep = lg["depart"]
        slot = np.searchsorted(times, dep, side="left")
        ok = made & (slot < nt)
        by_purpose = np.zeros((nt, len(_PURPOSES)), np.int64)
        np.add.at(by_purpose, (slot[ok], lg["purpose"][ok].astype(np.int64)), 1)
        by_mode = np.zeros((nt, 2), np.int64)
        np.add.at(by_mode, (slot[ok], lg["mode"][ok].astype(np.int64)), 1)
        out["pop_trips"] = _var(
            ("time", "purpose"), by_purpose, "1", "agent trips departing in the interval, by purpose"
        )
        out["pop_trips_by_mode"] = _var(
            ("time", "mode"), by_mode, "1", "agent trips departing in the interval, by mode"
        )
        if zd != "zone":
            z = self.comp.zones
            out["coord:pop_zone"] = _var((zd,), np.arange(nz, dtype=np.int64), "1", "population zone index")
            out["coord:pop_zone_name"] = _var((zd,), np.asarray(z.name, dtype=str), "1", "population zone name")
            out["coord:pop_zone_x"] = _var((zd,), np.asarray(z.x, np.float64), "m", "zone centroid, easting")
            out["coord:pop_zone_y"] = _var((zd,), np.asarray(z.y, np.float64), "m", "zone centroid, northing")
        if self.comp.spec.trip_table:
            out.update(self._trip_table())
        return out

    def _trip_table(self) -> dict[str, xr.Variable]:
        lg = self.comp.log
        net = self.comp.twin.city.network
        arrive = lg["arrive"].copy()
        car = (lg["mode"] == kc.MODE_CAR) & (lg["vid"] >= 0)
        arrive[car] = self.comp.twin.traffic.veh.arrive[lg["vid"][car]]
        arrive[arrive > self.comp.twin.traffic.now] = np.nan  # not yet
        table = self.comp.twin.trip_table()
        vehicle = np.where(lg["vid"] >= 0, table["trip_id"][np.maximum(lg["vid"], 0)], -1)
        d = ("pop_trip",)
        return {
            "coord:pop_trip": _var(d, np.arange(lg.n, dtype=np.int64), "1", "agent trip index"),
            "pop_trip_person": _var(d, lg["person"].astype(np.int64), "1", "person"),
            "pop_trip_purpose": _var(
                d, lg["purpose"].astype(np.int8), "1", "purpose (index into the purpose coordinate)"
            ),
            "pop_trip_mode": _var(d, lg["mode"].astype(np.int8), "1", "mode (index into the mode coordinate)"),
            "pop_trip_origin": _var(d, net.node_osmid[lg["orig"]], "1", "origin node (source id)"),
            "pop_trip_destination": _var(d, net.node_osmid[lg["dest"]], "1", "destination node (source id)"),
            "pop_trip_depart_s": _var(d, lg["depart"], "s", "departure since the start"),
            "pop_trip_arrive_s": _var(d, arrive, "s", "arrival since the start (NaN: not yet)"),
            "pop_trip_gc": _var(d, lg["gc"].astype(np.float64), "currency", "generalized cost (time value and money)"),
            "pop_trip_paid": _var(d, lg["paid"].astype(np.float64), "currency", "cordon prices paid"),
            "pop_trip_vehicle": _var(d, vehicle.astype(np.int64), "1", "trip id of the vehicle (-1: not by car)"),
            "pop_trip_cancelled": _var(
                d, (lg["status"] == TRIP_CANCELLED).astype(np.int8), "1", "1: cancelled before departure (evacuation)"
            ),
        }

    def evacuation_clearance_s(self, share: float | None = None) -> float:
        """Seconds from the first order until ``share`` of the ordered population reached safety (NaN: not yet)."""
        share = float(self.comp.spec.evacuation.clearance_share if share is None else share)
        evac = self.comp.policies.evac
        n0 = int(evac.target.sum())
        if not evac.orders or n0 == 0:
            return math.nan
        t = np.sort(evac.safe_t[evac.target & np.isfinite(evac.safe_t)])
        need = max(int(math.ceil(share * n0 - 1e-9)), 1)
        if t.size < need:
            return math.nan
        return float(t[need - 1] - evac.orders[0]["t"])

    def kpis(self) -> dict[str, float]:
        """The population's KPIs (trips, modes, travel times, policies)."""
        lg = self.comp.log
        now = self.comp.twin.traffic.now
        made = (lg["status"] != TRIP_CANCELLED) & (lg["depart"] <= now)
        evac = self.comp.policies.evac
        n0 = int(evac.target.sum())
        safe = int(np.count_nonzero(evac.target & np.isfinite(evac.safe_t)))
        return {
            "pop_persons": int(self.comp.people.n_persons),
            "pop_trips_made": int(made.sum()),
            "pop_trips_car": int(np.count_nonzero(made & (lg["mode"] == kc.MODE_CAR))),
            "pop_trips_cancelled": int(self.comp.n_cancelled),
            "pop_trips_dropped": int(self.comp.n_dropped + np.count_nonzero(lg["status"] == TRIP_CANCELLED)),
            "pop_mean_gc": float(lg["gc"][made].mean()) if made.any() else math.nan,
            "pop_cordon_crossings": int(np.count_nonzero(made & (lg["paid"] > 0))),
            "pop_evac_clearance_s": self.evacuation_clearance_s(),
            "pop_evac_safe_share": 100.0 * safe / n0 if n0 else math.nan,
        }
