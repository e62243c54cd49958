"""The live twin: a twin kept in step with the city's feed, and forked from "now".

Modules, in the order a live run uses them:

- :mod:`twin.live.settings` -- :class:`AssimilationSettings`, checked against the
  scenario (:meth:`AssimilationSettings.check`) before anything is built;
- :mod:`twin.live.ensemble` -- :class:`Ensemble`, the members (ordinary twins, each with a
  :class:`PoolDemand` component releasing an oversampled trip pool at the estimated demand
  scale) and the link changes the feed asks for;
- :mod:`twin.live.filter` -- :class:`~twin.live.filter.DemandFilter`, the filter step
  (Kalman filter or EnKF on the demand factors);
- :mod:`twin.live.observation` -- :class:`~twin.live.observation.Crossings`, the Kalman
  filter's observation operator (which sensor links each pool trip crosses, when, with
  what probability), and :func:`~twin.live.observation.count_band`;
- :mod:`twin.live.estimate` -- :class:`~twin.live.estimate.EstimateLog`, the estimates
  issued interval by interval, written as ``assimilation.nc``;
- :mod:`twin.live.shadow` -- :class:`Shadow`, shadow mode: the ensemble driven by a
  :class:`~twin.feeds.FeedHub`, with forks from "now" in the background;
- :mod:`twin.live.fork` -- :func:`twin.live.fork.fork`, what-ifs run from a snapshot side
  by side with doing nothing (the function is not re-exported here: its name is the module's).

Reading the feed (sources, cleansing, the sensor table) is :mod:`twin.feeds`: it is used
without the live twin too (recording, replaying, the truth experiments).  Forks run on an
executor the caller passes (the command line builds one); nothing here picks one.
"""

from __future__ import annotations

from twin.live.ensemble import Ensemble, PoolDemand
from twin.live.fork import ForkResult, Variant, load_variant
from twin.live.settings import AssimilationSettings
from twin.live.shadow import ForkJob, Shadow

__all__ = [
    "AssimilationSettings",
    "Ensemble",
    "ForkJob",
    "ForkResult",
    "PoolDemand",
    "Shadow",
    "Variant",
    "load_variant",
]
