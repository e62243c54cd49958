"""Policies the persons respond to: priced cordons, work from home, evacuation orders.

The interventions timeline calls these through the population component (at an
entry's ``at``, and the reverse at its ``until``); scripts and tests may call
them directly.  Zones are indices into the *city's* zones (``twin.city.zones``,
as the interventions resolve them) or their names; the policies act on the
nodes of those zones, so they apply whichever zoning the population uses.

* A cordon prices car trips that cross its boundary (origin inside xor
  destination inside) and depart while it is set; persons deciding weigh the
  price like any other cost (and, given ``until_s``, can shift out of it).
  Persons decide ``-min(shifts)`` before they leave, so trips already decided
  when a cordon comes in keep their choice.
* Work from home: a share of workers (the same persons for the same share,
  nested as the share grows) drop their work tours from now on.
* An evacuation order: persons in the zones who comply (a draw per household
  at home, per person elsewhere) leave after a response delay (normal, cut at
  0) for the nearest shelter, or the nearest zone outside the order, by car
  when they have one, else on foot; a household at home leaves together in
  one vehicle.  Trips they had decided but not started are cancelled.  Nobody
  else may enter the zones; persons who arrive in them later (already on the
  way) decide then whether to comply.
* A closed link or bridge needs nothing here: it reaches the persons through
  their travel-time skim (refreshed at once when links close or open) and
  through which nodes the open roads still connect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from basics.errors import InputError
from kernels import choice as kc
from kernels.routing import route_table
from kernels.traffic import VEH_PENDING
from twin.population.triplog import TRIP_CANCELLED

if TYPE_CHECKING:
    from twin.population.component import PopulationComponent

__all__ = ["Policies", "Evacuation"]

_NOT_ORDERED, _COMPLIES, _REFUSES = 0, 1, 2
#: counter-based random streams (slots) of the policies, apart from the choice kernel's
_SALT_WFH = 1 << 43
_SALT_EVAC = 1 << 44


@dataclass(eq=False)
class Evacuation:
    """The evacuation orders and who they reach (``pop.policies.evac``).

    Parameters
    ----------
    node : numpy.ndarray
        Per node: under an order.
    order_of_node : numpy.ndarray
        Per node: the order it is under (``-1``: none).
    status : numpy.ndarray
        Per person: not ordered (0), complies (1), refuses (2).
    target : numpy.ndarray
        Per person: in an ordered zone when the order came (or on arrival there).
    safe_t : numpy.ndarray
        Per person: when they first reached safety (NaN: not yet, or not ordered).
    orders : list of dict
        Each order: its time ``t``, ``compliance``, ``delay_mean``, ``delay_sd``,
        ``shelters`` (node indices or ``None``), ``n`` persons ordered, and
        ``shelter_tt`` (travel times to the shelters at the order) where it names shelters.
    safe_zone, safe_nodes, safe_indptr : numpy.ndarray or None
        Zones that can take evacuees, and their nodes to arrive at (CSR by zone);
        ``None`` until the first order.
    """

    node: np.ndarray
    order_of_node: np.ndarray
    status: np.ndarray
    target: np.ndarray
    safe_t: np.ndarray
    orders: list[dict[str, Any]] = field(default_factory=list)
    safe_zone: np.ndarray | None = None
    safe_nodes: np.ndarray | None = None
    safe_indptr: np.ndarray | None = None

    @classmethod
    def empty(cls, n_nodes: int, n_persons: int) -> Evacuation:
        """No order yet, for a city of ``n_nodes`` nodes and ``n_persons`` persons."""
        return cls(
            node=np.zeros(n_nodes, bool),
            order_of_node=np.full(n_nodes, -1, np.int16),
            status=np.zeros(n_persons, np.int8),
            target=np.zeros(n_persons, bool),
            safe_t=np.full(n_persons, np.nan),
        )


class Policies:
    """The policies of a :class:`~twin.population.component.PopulationComponent` (``pop.policies``).

    Parameters
    ----------
    comp : PopulationComponent
        The population the policies act on (its persons, plans, skim and policy records).
    """

    def __init__(self, comp: PopulationComponent) -> None:
        self.comp = comp

    # ------------------------------------------------------------------ zones
    def zone_nodes_mask(self, zones, what: str) -> np.ndarray:
        """Boolean node mask of city zones given by index or name."""
        cz = self.comp.twin.city.zones
        arr = np.atleast_1d(np.asarray(zones))
        if arr.size == 0:
            raise InputError(f"{what}: no zones given")
        if arr.dtype.kind in "US":
            names = {n: i for i, n in enumerate(cz.name)}
            unknown = [str(z) for z in arr if str(z) not in names]
            if unknown:
                raise InputError(
                    f"{what}: unknown zone(s) {', '.join(unknown[:5])}; zones are named like {cz.name[0]!r}"
                )
            idx = np.array([names[str(z)] for z in arr], np.int64)
        elif arr.dtype.kind in "iu":
            idx = arr.astype(np.int64)
            bad = idx[(idx < 0) | (idx >= cz.n_zones)]
            if bad.size:
                raise InputError(f"{what}: zone index {int(bad[0])} is not a zone of the city (0..{cz.n_zones - 1})")
        else:
            raise InputError(f"{what}: zones must be zone indices or names, got {arr.dtype}")
        return np.isin(cz.node_zone, idx)

    # ----------------------------------------------------------------- cordon
    def set_cordon(self, name: str, zones, price: float, *, until_s: float | None = None) -> None:
        """Price car trips crossing the boundary of ``zones`` (set again to change it).

        Parameters
        ----------
        name
            The cordon's name (:meth:`clear_cordon` takes it off).
        zones
            City zone indices or names inside the cordon.
        price
            What a crossing car trip pays (currency, >= 0).
        until_s
            When the price is announced to end (s since the start); persons
            leaving after it do not expect to pay.  Default: not announced.
        """
        price = float(price)
        if not price >= 0 or not math.isfinite(price):
            raise InputError(f"cordon {name!r}: the price must be a finite number >= 0, got {price!r}")
        mask = self.zone_nodes_mask(zones, f"cordon {name!r}").astype(np.uint8)
        until = math.inf if until_s is None else float(until_s)
        if name in self.comp.cordon_names:
            k = self.comp.cordon_names.index(name)
            self.comp.cordon[k] = mask
            self.comp.price[k] = price
            self.comp.price_until[k] = until
        else:
            self.comp.cordon_names.append(name)
            self.comp.cordon = np.vstack([self.comp.cordon, mask[None, :]])
            self.comp.price = np.append(self.comp.price, price)
            self.comp.price_until = np.append(self.comp.price_until, until)

    def clear_cordon(self, name: str) -> None:
        """Take cordon ``name`` off (unknown names are an error)."""
        if name not in self.comp.cordon_names:
            raise InputError(f"no cordon named {name!r} is set (set: {', '.join(self.comp.cordon_names) or 'none'})")
        k = self.comp.cordon_names.index(name)
        del self.comp.cordon_names[k]
        keep = np.arange(self.comp.price.size) != k
        self.comp.cordon = np.ascontiguousarray(self.comp.cordon[keep])
        self.comp.price = self.comp.price[keep]
        self.comp.price_until = self.comp.price_until[keep]

    # ------------------------------------------------------------ work from home
    def set_work_from_home(self, share: float) -> None:
        """From now on, ``share`` of the workers stay home instead of going to work.

        The same workers are chosen for the same share (a counter-based draw
        per person), and those chosen at a smaller share are among those at a
        larger one; setting the share back to 0 sends everybody to work again.
        Workers already at work come home as planned.
        """
        share = float(share)
        if not 0.0 <= share <= 1.0:
            raise InputError(f"work from home: the share must lie in [0, 1], got {share!r}")
        n = self.comp.people.n_persons
        keys = np.empty(n, np.uint64)
        u = np.empty(n)
        kc.decision_keys(self.comp.base_key, np.arange(n, dtype=np.int64), np.zeros(n, np.int64), keys)
        kc.hash_uniforms(keys, _SALT_WFH, u)
        self.comp.wfh = self.comp.people.worker & (u < share)
        self.comp.work_from_home_share = share

    # ---------------------------------------------------------------- evacuation
    def init_evacuation(self) -> None:
        """Empty evacuation records (no order yet)."""
        #: the evacuation orders and who they reach
        self.evac = Evacuation.empty(self.comp.n_nodes, self.comp.people.n_persons)

    def order_evacuation(
        self,
        zones,
        *,
        compliance: float = 1.0,
        delay_mean_s: float = 0.0,
        delay_sd_s: float = 0.0,
        shelters: np.ndarray | None = None,
    ) -> int:
        """Order the persons in ``zones`` to leave; returns how many are ordered (in the zones now).

        Parameters
        ----------
        zones
            City zone indices or names.
        compliance
            Share who obey (per household at home, per person elsewhere).
        delay_mean_s, delay_sd_s
            Response delay: normal, cut at 0.
        shelters
            Node indices to go to (the nearest by current travel time);
            ``None``: the nearest zone outside the order.
        """
        if not 0.0 <= compliance <= 1.0:
            raise InputError(f"evacuation: compliance must lie in [0, 1], got {compliance!r}")
        if not (delay_mean_s >= 0 and delay_sd_s >= 0) or not math.isfinite(delay_mean_s + delay_sd_s):
            raise InputError("evacuation: the delay's mean and spread must be finite and >= 0")
        shel = None
        if shelters is not None:
            shel = np.unique(np.asarray(shelters, np.int64))
            if shel.size and (shel.min() < 0 or shel.max() >= self.comp.n_nodes):
                raise InputError(f"evacuation: shelter nodes must be node indices 0..{self.comp.n_nodes - 1}")
        mask = self.zone_nodes_mask(zones, "evacuation")
        tw = self.comp.twin
        tw.sync()
        now = tw.now
        self.comp.settle_arrivals(now)  # who has arrived by now is where they arrived
        self.comp.refresh_skim(now, force=True)
        order = len(self.evac.orders)
        self.evac.orders.append(
            {
                "t": now,
                "compliance": float(compliance),
                "delay_mean": float(delay_mean_s),
                "delay_sd": float(delay_sd_s),
                "shelters": shel,
                "n": 0,
            }
        )
        self.evac.node |= mask
        self.evac.order_of_node[mask] = order
        self.comp.node_open[mask] = 0
        if shel is not None:
            self.evac.orders[-1]["shelter_tt"] = self._distances_to(shel)  # [shelter, node], at the order
        self._open_zone_nodes()
        # persons with a trip decided but not started are still there (who obeys cancels it)
        here = self.in_place(mask)
        targets = np.flatnonzero(here & (self.evac.status == _NOT_ORDERED))
        self.evac.target[targets] = True
        self.evacuate(targets, now, order)
        n = int(np.count_nonzero(self.evac.target[targets]))
        self.evac.orders[-1]["n"] = n
        self.comp.poke()
        return n

    def in_place(self, mask: np.ndarray) -> np.ndarray:
        """Persons at a node of ``mask`` and not under way (a trip decided but not started counts as here)."""
        has = self.comp.trip_mode >= 0
        pending = has & (self.comp.trip_dep > self.comp.twin.now)
        return (~has | pending) & mask[self.comp.node]

    def _cancel_pending(self, persons: np.ndarray) -> np.ndarray:
        """Cancel the trips ``persons`` decided but have not started; returns those still on a trip
        (a car released in this very tick can no longer be called back).
        """
        p = persons[self.comp.trip_mode[persons] >= 0]
        if p.size == 0:
            return p
        car = p[self.comp.trip_mode[p] == kc.MODE_CAR]
        veh = self.comp.twin.traffic.veh
        car = car[veh.link[self.comp.trip_vid[car]] == VEH_PENDING]
        gone = self.comp.twin.traffic.cancel_trips(self.comp.trip_vid[car]) if car.size else np.zeros(0, np.int64)
        cancel = np.concatenate([p[self.comp.trip_mode[p] != kc.MODE_CAR], car[np.isin(self.comp.trip_vid[car], gone)]])
        if cancel.size:
            self.comp.log["status"][self.comp.trip_row[cancel]] = TRIP_CANCELLED
            self.comp.trip_mode[cancel] = -1
            self.comp.trip_vid[cancel] = -1
            self.comp.travelling = self.comp.travelling[~np.isin(self.comp.travelling, cancel)]
        return p[self.comp.trip_mode[p] >= 0]

    def _distances_to(self, nodes: np.ndarray) -> np.ndarray:
        """Current car travel time from every node to each of ``nodes`` ([k, n_nodes])."""
        g = self.comp.twin.traffic.graph
        dist = np.full((nodes.size, self.comp.n_nodes), np.inf)
        if nodes.size:
            route_table(
                g,
                nodes.astype(np.int32),
                self.comp.twin.traffic.routes.weight,
                active=np.ones(nodes.size, np.bool_),
                next_link_out=np.empty((0, self.comp.n_nodes), np.int32),
                dist_out=dist,
            )
        return dist

    def _open_zone_nodes(self) -> None:
        """Zones that can take evacuees (most of their nodes outside every order), and their open access nodes."""
        nz = self.comp.zones.n_zones
        ok = ~self.evac.node[self.comp.zone_nodes]
        z_of = np.repeat(np.arange(nz), np.diff(self.comp.zone_indptr))
        n_ok = np.bincount(z_of[ok], minlength=nz)
        n_all = np.diff(self.comp.zone_indptr)
        self.evac.safe_zone = (
            (n_ok > 0)
            & (2 * n_ok >= n_all)
            & (self.comp.centroid >= 0)
            & ~self.evac.node[np.maximum(self.comp.centroid, 0)]
        )
        # arrive at the zone's access nodes outside the order (any open node if none is)
        ptr, acc = self.comp.people.access_indptr, self.comp.people.access_nodes
        a_zone = np.repeat(np.arange(nz), np.diff(ptr))
        a_ok = ~self.evac.node[acc]
        has_acc = np.bincount(a_zone[a_ok], minlength=nz) > 0
        nodes = np.concatenate([acc[a_ok], self.comp.zone_nodes[ok & ~has_acc[z_of]]])
        zone = np.concatenate([a_zone[a_ok], z_of[ok & ~has_acc[z_of]]])
        order = np.argsort(zone, kind="stable")
        self.evac.safe_nodes = nodes[order].astype(np.int32)
        indptr = np.zeros(nz + 1, np.int64)
        np.cumsum(np.bincount(zone, minlength=nz), out=indptr[1:])
        self.evac.safe_indptr = indptr

    def evacuate(self, persons: np.ndarray, t0, order: int) -> None:
        """Compliance, delay, destination and trips for ``persons`` (in ordered zones, not under way).

        ``t0`` (scalar or per person) is when each heard the order: the order
        itself, or their arrival in the zone.
        """
        if persons.size == 0:
            return
        o = self.evac.orders[order]
        people = self.comp.people
        t0 = np.broadcast_to(np.asarray(t0, np.float64), persons.shape)
        at_home = (self.comp.place[persons] == 0) & (self.comp.node[persons] == people.home_node[persons])
        # units: a household at home leaves together; anyone else alone
        unit = np.where(at_home, people.household[persons].astype(np.int64), people.n_households + persons)
        units, first, inv = np.unique(unit, return_index=True, return_inverse=True)
        keys = np.empty(units.size, np.uint64)
        kc.decision_keys(self.comp.base_key, units, np.full(units.size, order, np.int64), keys)
        u_c = kc.hash_uniforms(keys, _SALT_EVAC, np.empty(units.size))
        u1 = kc.hash_uniforms(keys, _SALT_EVAC + 1, np.empty(units.size))
        u2 = kc.hash_uniforms(keys, _SALT_EVAC + 2, np.empty(units.size))
        z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
        delay = np.maximum(o["delay_mean"] + o["delay_sd"] * z, 0.0)
        comply = (u_c < o["compliance"])[inv]
        self.evac.status[persons] = np.where(comply, _COMPLIES, _REFUSES)
        if not comply.any():
            return
        # who obeys drops the trip they had decided on; one already driving off is not here any more
        gone = self._cancel_pending(persons[comply])
        if gone.size:
            out = np.isin(persons, gone)
            self.evac.status[gone] = _NOT_ORDERED  # they decide when they arrive somewhere ordered
            self.evac.target[gone] = False
            comply &= ~out
        # per unit: its first member leads (and drives, with the unit's car)
        lead = persons[first]
        unit_car = np.where(at_home[first], people.hh_car[people.household[lead]], people.car[lead])
        dest_u, tt_u = self._evac_destinations(lead, unit_car, order)
        dep_u = np.maximum(t0[first] + delay, self.comp.twin.now)
        node_comp = self.comp.node_comp
        assert node_comp is not None  # the skim was refreshed by the order
        use_car_u = (
            unit_car
            & np.isfinite(tt_u)
            & (dest_u != self.comp.node[lead])
            & (node_comp[dest_u] == node_comp[self.comp.node[lead]])
        )
        vid_u = np.full(units.size, -1, np.int64)
        movers = np.flatnonzero(use_car_u & (np.bincount(inv[comply], minlength=units.size) > 0))
        if movers.size:
            vid_u[movers] = self.comp.twin.add_trips(
                self.comp.node[lead[movers]], dest_u[movers], dep_u[movers], source="population"
            )
        go = persons[comply]
        ui = inv[comply]
        dest = dest_u[ui]
        walk = self.comp.params.detour * np.hypot(
            self.comp.node_x[dest] - self.comp.node_x[self.comp.node[go]],
            self.comp.node_y[dest] - self.comp.node_y[self.comp.node[go]],
        )
        car = vid_u[ui] >= 0
        tt = np.where(car, tt_u[ui], walk / (float(self.comp.spec.evacuation.walk_speed_kmh) / 3.6))
        # plans end: they stay where they are evacuated to
        self.comp.next_t[go] = np.inf
        self.comp.leg[go] = self.comp.plans.n_legs[go]
        self.comp.start_trips(
            go,
            self.comp.leg[go].astype(np.int64),
            np.full(go.size, 4, np.int8),
            dest,
            np.where(car, kc.MODE_CAR, kc.MODE_OTHER).astype(np.int8),
            dep_u[ui],
            tt,
            people.vot[go].astype(np.float64) * np.where(np.isfinite(tt), tt, 0.0) / 3600.0,
            np.zeros(go.size),
            vid=vid_u[ui],
        )

    def _evac_destinations(self, persons: np.ndarray, has_car: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
        """Each evacuee's destination node and car travel time to it (inf: none by car)."""
        origin = self.comp.node[persons]
        o = self.evac.orders[order]
        dest = np.full(persons.size, -1, np.int32)
        tt = np.full(persons.size, np.inf)
        if o["shelters"] is not None and o["shelters"].size:
            d = o["shelter_tt"][:, origin]
            best = np.argmin(d, axis=0)
            ok = np.isfinite(d[best, np.arange(persons.size)])
            dest[ok] = o["shelters"][best[ok]]
            tt[ok] = d[best[ok], np.arange(persons.size)[ok]]
            # no road to any shelter: the nearest one as the crow flies, on foot
            near = np.argmin(
                np.hypot(
                    self.comp.node_x[o["shelters"]][:, None] - self.comp.node_x[origin][None, :],
                    self.comp.node_y[o["shelters"]][:, None] - self.comp.node_y[origin][None, :],
                ),
                axis=0,
            )
            dest[~ok] = o["shelters"][near[~ok]]
            return dest, tt
        safe_zone, safe_nodes, safe_indptr = self.evac.safe_zone, self.evac.safe_nodes, self.evac.safe_indptr
        assert safe_zone is not None and safe_nodes is not None and safe_indptr is not None  # set by the order
        safe = np.flatnonzero(safe_zone)
        if safe.size == 0:
            raise InputError("evacuation: every zone is under the order: there is nowhere outside to go")
        t = self.comp.skim[safe][:, origin]
        zx, zy = self.comp.node_x[self.comp.centroid[safe]], self.comp.node_y[self.comp.centroid[safe]]
        crow = np.hypot(
            zx[:, None] - self.comp.node_x[origin][None, :], zy[:, None] - self.comp.node_y[origin][None, :]
        )
        by_car = np.isfinite(t).any(0) & has_car
        pick = np.where(by_car, np.argmin(np.where(np.isfinite(t), t, np.inf), axis=0), np.argmin(crow, axis=0))
        zone = safe[pick]
        keys = np.empty(persons.size, np.uint64)
        kc.decision_keys(self.comp.base_key, persons.astype(np.int64), np.full(persons.size, 63, np.int64), keys)
        u = kc.hash_uniforms(keys, _SALT_EVAC + 3, np.empty(persons.size))
        cnt = safe_indptr[zone + 1] - safe_indptr[zone]
        j = np.minimum((u * cnt).astype(np.int64), cnt - 1)
        dest[:] = safe_nodes[safe_indptr[zone] + j]
        tt[:] = np.where(by_car, t[pick, np.arange(persons.size)], np.inf)
        return dest, tt

    def evacuee_safe(self, persons: np.ndarray, t: np.ndarray) -> None:
        """Note when evacuees first reach safety."""
        first = np.isnan(self.evac.safe_t[persons])
        self.evac.safe_t[persons[first]] = t[first]

    def arrived_in_evacuated(self, persons: np.ndarray, t: np.ndarray) -> None:
        """Persons arriving in an ordered zone (they were on the way) decide then whether to comply."""
        if not self.evac.orders or persons.size == 0:
            return
        inside = self.evac.node[self.comp.node[persons]] & (self.evac.status[persons] == _NOT_ORDERED)
        for order in np.unique(self.evac.order_of_node[self.comp.node[persons[inside]]]):
            sel = inside & (self.evac.order_of_node[self.comp.node[persons]] == order)
            # each counts the delay from their arrival (or the order, if they arrived just before it)
            self.evacuate(persons[sel], np.maximum(t[sel], self.evac.orders[int(order)]["t"]), int(order))
