"""Dispatch: travel times on the live network and pluggable unit-selection policies.

A **policy** chooses which units to send::

    def policy(incident: Incident, kind: str, n: int, candidates: Candidates) -> Sequence[int]:
        ...  # return up to n unit ids taken from candidates.units

It is called by the dispatch centre for each unit kind an incident still needs, with
the units of that kind that may be sent now (at their station, or driving home) and
their travel time to the scene over the *current* network (congested link times
divided by the emergency speed factor; closed links never used; ``inf`` when the
scene cannot be reached).  Units it returns that are not candidates, or cannot reach
the scene, are refused (an :class:`~basics.errors.InputError`), so a policy can never
send a busy unit.  Name one in a scenario as ``incidents.policy:
"package.module:function"``, or set ``twin.components["emergency"].policy``.

Built-in policies: :func:`closest` (the default) and :func:`closest_free_flow`.

A scenario file alone never loads code: a policy named ``"package.module:function"``
is loaded only if it is

- a registered plug-in: an installed package declares it as an entry point of the
  group :data:`ENTRY_POINT_GROUP` (``city_twin.dispatch_policies``), e.g. in its
  ``pyproject.toml``::

      [project.entry-points."city_twin.dispatch_policies"]
      nearest_engine = "my_policies.fire:nearest_engine"

  (the scenario names it by the entry point's value, ``my_policies.fire:nearest_engine``,
  or by its name if that holds a ``:``); or
- trusted for this process on the command line, ``--allow-plugins my_policies.fire:nearest_engine``
  (:func:`allow_plugins`), or from Python with :func:`register_policy`.

Anything else is refused with an :class:`~basics.errors.InputError` before the module is
imported.  Snapshots store a policy by that name (:func:`policy_registry`), and restore
it through the same gate.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from basics.errors import InputError
from kernels import traffic_state as kt
from kernels.routing import check_weight, compute_tree_from, compute_tree_to, extract_path

__all__ = [
    "Candidates",
    "Router",
    "closest",
    "closest_free_flow",
    "load_policy",
    "POLICIES",
    "ENTRY_POINT_GROUP",
    "allow_plugins",
    "register_policy",
    "policy_registry",
]


@dataclass
class Candidates:
    """The units of one kind that may be sent to an incident now.

    Attributes
    ----------
    kind : str
        Unit kind.
    units : ndarray of int64
        Unit ids.
    travel_s : ndarray of float64
        Current emergency travel time to the scene, s (``inf``: cannot reach it).
    mutual_aid : ndarray of bool
        The unit belongs to a mutual-aid station.
    station : ndarray of int64
        The unit's home station index.
    """

    kind: str
    units: np.ndarray
    travel_s: np.ndarray
    mutual_aid: np.ndarray
    station: np.ndarray
    free_flow_fn: Callable[[], np.ndarray] | None = None
    _free: np.ndarray | None = None
    #: whether any candidate is on mutual aid (``None``: look)
    any_mutual_aid: bool | None = None

    @property
    def free_flow_s(self) -> np.ndarray:
        """Free-flow travel time to the scene (closures respected, congestion ignored)."""
        if self._free is None:
            self._free = self.free_flow_fn() if self.free_flow_fn is not None else self.travel_s
        return self._free


def _by(cand: Candidates, n: int, cost: np.ndarray) -> list[int]:
    if n == 1 and cost.size:  # the common case: the single best (own units first; ties: lowest id)
        aid = cand.mutual_aid
        if cand.any_mutual_aid if cand.any_mutual_aid is not None else aid.any():
            own = np.where(aid, np.inf, cost)
            j = int(own.argmin())
            if own[j] == np.inf:  # no own unit can reach it: mutual aid
                j = int(cost.argmin())
        else:
            j = int(cost.argmin())
        # ``units`` ascend, and argmin takes the first of equal costs: the lowest id
        return [int(cand.units[j])] if cost[j] < np.inf else []
    ok = np.isfinite(cost)
    out: list[int] = []
    for mutual in (False, True):  # own units first, then mutual aid
        sel = np.flatnonzero(ok & (cand.mutual_aid == mutual))
        order = sel[np.lexsort((cand.units[sel], cost[sel]))]
        out.extend(int(u) for u in cand.units[order[: n - len(out)]])
        if len(out) >= n:
            break
    return out


def closest(incident, kind: str, n: int, cand: Candidates) -> list[int]:
    """The ``n`` units with the shortest current travel time (own units before mutual aid)."""
    return _by(cand, n, cand.travel_s)


def closest_free_flow(incident, kind: str, n: int, cand: Candidates) -> list[int]:
    """The ``n`` units closest by free-flow time: blind to congestion (a baseline to compare)."""
    return _by(cand, n, cand.free_flow_s)


POLICIES: dict[str, Callable] = {"closest": closest, "closest_free_flow": closest_free_flow}


#: entry point group of installed dispatch policy plug-ins
ENTRY_POINT_GROUP = "city_twin.dispatch_policies"

#: "module:function" names trusted for this process (``--allow-plugins``)
_ALLOWED: set[str] = set()
#: policies registered from Python (:func:`register_policy`) and plug-ins loaded so far, by name
_REGISTERED: dict[str, Callable] = {}


def allow_plugins(names) -> None:
    """Trust these ``"package.module:function"`` dispatch policies in this process
    (what ``--allow-plugins`` on the command line does).
    """
    for name in names or ():
        name = str(name).strip()
        module, sep, func = name.partition(":")
        if not sep or not all(p.isidentifier() for p in module.split(".")) or not func.isidentifier():
            raise InputError(f"--allow-plugins: '{name}' is not 'package.module:function'")
        _ALLOWED.add(name)


def allowed_plugins() -> tuple[str, ...]:
    """The names :func:`allow_plugins` trusted (to pass on to worker processes)."""
    return tuple(sorted(_ALLOWED))


def register_policy(name: str, fn: Callable) -> None:
    """Make ``fn`` a dispatch policy named ``name`` in this process (scenarios and snapshots may name it)."""
    if not callable(fn):
        raise InputError(f"dispatch policy '{name}' is not a function")
    _REGISTERED[str(name)] = fn


def _entry_points() -> dict:
    from importlib.metadata import entry_points

    out: dict[str, Any] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        out.setdefault(ep.value.strip(), ep)
        out.setdefault(ep.name, ep)
    return out


def _import_policy(name: str) -> Callable:
    module, _, func = name.partition(":")
    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError, ValueError) as exc:
        raise InputError(f"incidents.policy: cannot load dispatch policy '{name}': {exc}") from None
    return fn


def load_policy(name: str) -> Callable:
    """A built-in policy by name, a registered plug-in, or an allowed ``"package.module:function"``
    (see the module docstring); anything else is refused without importing it.
    """
    name = str(name).strip()
    if name in POLICIES:
        return POLICIES[name]
    fn = _REGISTERED.get(name)
    if fn is None:
        ep = _entry_points().get(name)
        if ep is not None:
            try:
                fn = ep.load()
            except Exception as exc:  # noqa: BLE001  (a broken plug-in package: say which)
                raise InputError(
                    f"incidents.policy: cannot load plug-in '{name}' (entry point {ep.name} = {ep.value}): {exc}"
                ) from None
        elif name in _ALLOWED:
            fn = _import_policy(name)
        else:
            raise InputError(
                f"incidents.policy: cannot load dispatch policy '{name}': it is neither a built-in policy "
                f"({', '.join(POLICIES)}) nor a registered "
                f"plug-in (entry point group '{ENTRY_POINT_GROUP}'); a scenario file alone cannot load code: to "
                f"trust it, give --allow-plugins {name} on the command line"
            )
    if not callable(fn):
        raise InputError(f"incidents.policy: '{name}' is not a function")
    _REGISTERED[name] = fn
    return fn


def policy_registry() -> dict[str, Callable]:
    """Every dispatch policy this process trusts, by name: built-ins, those registered or loaded,
    and the allowed plug-ins (snapshots store a policy by this name).
    """
    out = dict(POLICIES)
    out.update(_REGISTERED)
    for name in _ALLOWED | set(_entry_points()):
        if name not in out:
            try:
                out[name] = load_policy(name)
            except InputError:
                pass
    return out


class Router:
    """Emergency travel times on the twin's current network, with cached shortest-path trees.

    Trees come from :mod:`kernels.routing`'s checked ``compute_tree_to`` / ``compute_tree_from``
    (each call checks the weights again, one pass over the links beside the search itself).  Link weights are the traffic model's current link travel times
    (:func:`kernels.traffic_state.link_travel_times`: free-flow, queue discharge, or how long
    the head vehicle has waited; ``inf`` on closed links) divided by the emergency
    speed factor.  They are refreshed every ``refresh_s`` seconds of the clock (the
    cached trees with them), like a traffic picture updated every minute; a link that
    closes or reopens (a flood, a closed bridge, road works) changes its weight at once.
    A capacity change that leaves the link open (a crash narrowing it) shows in the weights
    from the next refresh, as the queue it causes builds.  A cached tree survives a
    closure or reopening when it is still a shortest-path tree under the new weights (no
    link of it closed, and no reopened link is a shortcut), so a flood across town does
    not cost every tree.  The
    weights and trees are part of the router's state (snapshots keep them), so a restored
    run routes exactly as the uninterrupted one.
    """

    def __init__(self, twin, *, speed_factor: float, refresh_s: float = 60.0) -> None:
        self.twin = twin
        self.graph = twin.traffic.graph
        self.factor = float(speed_factor)
        self.refresh_s = float(refresh_s)
        #: (refresh window, link-control version) the weights are for
        self._key: tuple[int, int] | None = None
        #: the weights stay valid while the clock is before this and the link version is ``_key[1]``
        self._valid_until = -math.inf
        self._w = np.zeros(self.graph.n_links)
        self._free: np.ndarray | None = None
        self._to: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._from: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_free=None)  # derived from the links alone
        return state

    def link_version(self) -> int:
        """A counter that changes whenever links close, open or change (LinkControl's history length)."""
        return len(self.twin.link_control.history)

    def _current_times(self) -> np.ndarray:
        tw = self.twin
        tw.sync()
        tm = tw.traffic
        w = np.empty(self.graph.n_links)
        kt.link_travel_times(tm.links, tm.state, tm.veh, tm.now, w)
        w /= self.factor
        return check_weight(self.graph, w)  # once per refresh

    def weights(self) -> np.ndarray:
        """Current emergency link travel times (s; ``inf`` closed)."""
        tw = self.twin
        v = len(tw.link_control.history)
        if tw.env.now < self._valid_until and self._key is not None and self._key[1] == v:
            return self._w
        window = math.floor(tw.env.now / self.refresh_s)
        if self._key is not None and self._key[0] == window:  # links changed within the window
            self._links_changed(self._key[1], v)
            self._key = (window, v)
            return self._w
        self._w = self._current_times()
        self._key = (window, v)
        self._valid_until = (window + 1) * self.refresh_s
        self._free = None
        self._to.clear()
        self._from.clear()
        return self._w

    def _links_changed(self, v0: int, v1: int) -> None:
        """Close or reopen the links that link-control entries ``v0:v1`` closed or reopened, and
        drop the cached trees that this invalidates.
        """
        hist = self.twin.link_control.history[v0:v1]
        links = np.unique(np.concatenate([np.asarray(h[4], np.int64).ravel() for h in hist]))
        old = self._w[links]
        now_closed = self.is_closed(links)
        flipped = now_closed != (old == np.inf)
        if not flipped.any():
            return
        self._free = None
        links, old, now_closed = links[flipped], old[flipped], now_closed[flipped]
        new = np.full(links.size, np.inf)
        if not now_closed.all():  # reopened: their current time
            new[~now_closed] = self._current_times()[links[~now_closed]]
        self._w[links] = new
        g = self.graph
        s, d = g.src[links], g.dst[links]
        slower = new > old
        for dest, (dist, nxt) in list(self._to.items()):  # dist: to dest; nxt: first link
            if (slower & (nxt[s] == links)).any() or (~slower & (dist[d] + new < dist[s])).any():
                del self._to[dest]
        for orig, (dist, pred) in list(self._from.items()):  # dist: from orig; pred: last link
            if (slower & (pred[d] == links)).any() or (~slower & (dist[s] + new < dist[d])).any():
                del self._from[orig]

    def free_weights(self) -> np.ndarray:
        """Free-flow link times over the emergency factor (``inf`` where closed)."""
        self.weights()
        if self._free is None:
            lk = self.twin.traffic.links
            closed = (lk.is_open == 0) | ~np.isfinite(lk.headway)
            self._free = np.where(closed, np.inf, lk.free_tt / self.factor)
        return self._free

    def tree_to(self, node: int) -> tuple[np.ndarray, np.ndarray]:
        """Travel time from every node to ``node`` and the first link to take."""
        w = self.weights()
        hit = self._to.get(node)
        if hit is None:
            hit = self._to[node] = compute_tree_to(self.graph, int(node), w)
        return hit

    def free_tree_to(self, node: int) -> np.ndarray:
        """Free-flow emergency travel time from every node to ``node``, s (closed links excluded)."""
        return compute_tree_to(self.graph, int(node), self.free_weights())[0]

    def tree_from(self, node: int) -> tuple[np.ndarray, np.ndarray]:
        """Travel time from ``node`` to every node and each node's last link."""
        w = self.weights()
        hit = self._from.get(node)
        if hit is None:
            hit = self._from[node] = compute_tree_from(self.graph, int(node), w)
        return hit

    def path_to(self, orig: int, dest: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Links from ``orig`` to ``dest`` and their travel times; ``None`` if unreachable."""
        dist, nxt = self.tree_to(dest)
        if not dist[orig] < math.inf:
            return None
        links = extract_path(self.graph, orig, nxt)
        return links, self._w[links]

    def path_from(self, orig: int, dest: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Like :meth:`path_to`, along the tree *from* ``orig`` (one tree serves every unit
        leaving a scene, and the patient transport from it); ``None`` if unreachable.
        """
        dist, pred = self.tree_from(orig)
        if not dist[dest] < math.inf:
            return None
        return self.path_from_tree(pred, orig, dest)

    def path_from_tree(self, pred: np.ndarray, orig: int, dest: int) -> tuple[np.ndarray, np.ndarray]:
        """Links from ``orig`` to ``dest`` along a :meth:`tree_from` predecessor row."""
        out = []
        node = dest
        src = self.graph.src
        while node != orig:
            a = int(pred[node])
            out.append(a)
            node = int(src[a])
        links = np.asarray(out[::-1], np.int32)
        return links, self._w[links]

    def closed_mask(self) -> np.ndarray:
        """Every link's closed flag now (closed, or no capacity)."""
        lk = self.twin.traffic.links
        return (lk.is_open == 0) | ~np.isfinite(lk.headway)

    def is_closed(self, links: np.ndarray) -> np.ndarray:
        """Whether each link is closed to new vehicles now."""
        lk = self.twin.traffic.links
        return (lk.is_open[links] == 0) | ~np.isfinite(lk.headway[links])


def check_choice(chosen: Sequence[int], cand: Candidates, n: int, *, policy_name: str, incident_id: int) -> list[int]:
    """The policy's choice, checked: candidates only, reachable, no repeats, at most ``n``."""
    out = [int(u) for u in chosen]
    if len(out) > n or len(set(out)) != len(out):
        raise InputError(
            f"dispatch policy {policy_name}: for incident {incident_id} it returned {out}, "
            f"more than the {n} '{cand.kind}' unit(s) needed or a unit twice"
        )
    for u in out:
        hit = np.flatnonzero(cand.units == u)
        if hit.size == 0:
            raise InputError(
                f"dispatch policy {policy_name}: unit {u} is not free to send to incident "
                f"{incident_id} (busy, out of service or not a '{cand.kind}')"
            )
        if not np.isfinite(cand.travel_s[hit[0]]):
            raise InputError(
                f"dispatch policy {policy_name}: unit {u} cannot reach incident {incident_id} (no open route)"
            )
    return out
