"""Design points of an experiment: full factorial, or through SALib (Latin hypercube, Sobol, Morris).

Sampling is SALib's own (``SALib.sample.latin``, ``.sobol`` (Saltelli's scheme), ``.morris``)
seeded from the spec's seed, so a design is the same every time it is built.  The points
come in SALib's order, which its analysers expect.  An optimisation has no points up
front: its trials are asked of the optimiser as runs finish (see :mod:`experiments.optimize`).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from experiments.spec import ExperimentSpec

__all__ = ["design_points", "n_points", "salib_problem"]


def salib_problem(spec: ExperimentSpec) -> dict[str, Any]:
    """The SALib problem dict of the spec's (range) factors."""
    return {
        "num_vars": len(spec.factors),
        "names": [f.name for f in spec.factors],
        "bounds": [[float(f.values[0]), float(f.values[1])] for f in spec.factors],
    }


def _salib_matrix(spec: ExperimentSpec) -> np.ndarray:
    d = spec.design
    problem = salib_problem(spec)
    if d["kind"] == "lhs":
        from SALib.sample import latin

        return latin.sample(problem, d["points"], seed=spec.seed)
    if d["kind"] == "sobol":
        from SALib.sample import sobol

        return sobol.sample(problem, d["base_samples"], calc_second_order=bool(d["second_order"]), seed=spec.seed)
    from SALib.sample import morris

    return morris.sample(problem, d["trajectories"], num_levels=d["levels"], seed=spec.seed)


def design_points(spec: ExperimentSpec) -> list[dict[str, Any]]:
    """The design's points, each ``{factor name: value}``, in a fixed order.

    Parameters
    ----------
    spec : ExperimentSpec

    Returns
    -------
    list of dict
        Full factorial: every combination of levels/choices (the last factor varying
        fastest; a range gives its two ends). LHS, Sobol, Morris: SALib's sample.
        Optimisation: ``trials`` empty dicts, filled in by the optimiser.
    """
    kind = spec.design["kind"]
    if kind == "optimize":
        return [{} for _ in range(spec.design["trials"])]
    if kind == "factorial":
        return [
            {f.name: v for f, v in zip(spec.factors, combo, strict=True)}
            for combo in itertools.product(*(f.values for f in spec.factors))
        ]
    matrix = _salib_matrix(spec)
    points = []
    for row in matrix:
        point = {}
        for f, v in zip(spec.factors, row, strict=True):
            point[f.name] = int(round(float(v))) if f.integer else float(v)
        points.append(point)
    return points


def n_points(spec: ExperimentSpec) -> int:
    """How many points the design has."""
    return len(design_points(spec))
