"""The population's settings, from the scenario's ``population`` section to the types the synthesis,
the plans and the choice kernel take.
"""

from __future__ import annotations

import numpy as np

from city_models.plans import ActivityTimes, PlanParams
from city_models.population import SynthesisParams
from kernels import choice as kc

__all__ = ["choice_params", "plan_params", "synthesis_params"]


def _activity(a) -> ActivityTimes:
    return ActivityTimes(
        float(a.depart), float(a.depart_sd), float(a.duration), float(a.duration_sd), float(a.min_duration)
    )


def synthesis_params(syn) -> SynthesisParams:
    """Synthesis settings from the scenario's ``population.synthesis`` section."""
    return SynthesisParams(
        household_sizes=tuple(syn.household_sizes),
        age_shares=tuple(syn.age_shares),
        employment_rate=syn.employment_rate,
        senior_employment_rate=syn.senior_employment_rate,
        car_share=syn.car_share,
        vot_median=syn.value_of_time,
        vot_sigma=syn.value_of_time_spread,
        worker_vot_factor=syn.worker_vot_factor,
        work_beta_per_km=syn.work_beta_per_km,
        school_beta_per_km=syn.school_beta_per_km,
        access_nodes=syn.access_nodes,
    )


def plan_params(pl) -> PlanParams:
    """Activity-plan settings from the scenario's ``population.plans`` section."""
    return PlanParams(
        work=_activity(pl.work),
        school=_activity(pl.school),
        other=_activity(pl.other),
        home=_activity(pl.home),
        stop_after_work=pl.stop_after_work,
        worker_evening=pl.worker_evening,
        student_other=pl.student_other,
        out_share=pl.out_share,
        chain_other=pl.chain_other,
        second_tour=pl.second_tour,
    )


def choice_params(ch) -> kc.ChoiceParams:
    """Choice-kernel settings from the scenario's ``population.choice`` section."""
    return kc.ChoiceParams(
        theta=float(ch.theta),
        shifts=np.asarray(ch.shifts, np.float64),
        early_cost_h=float(ch.early_cost_per_h),
        late_cost_h=float(ch.late_cost_per_h),
        car_cost_km=float(ch.car_cost_per_km),
        detour=float(ch.detour),
        other_speed=float(ch.other_speed_kmh) / 3.6,
        other_wait_s=float(ch.other_wait),
        other_fare=float(ch.other_fare),
        other_penalty=float(ch.other_penalty),
        attract_weight=float(ch.attraction_weight),
        dest_beta_km=float(ch.destination_beta_per_km),
        n_samples=int(ch.destination_samples),
    )
