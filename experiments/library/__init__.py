"""Built-in experiment files (``*.yaml`` beside this module), found by name.

- ``ems_fleet_call_rate``: EMS fleet size x medical call rate x dispatch policy, factorial;
- ``traffic_sobol``: a Sobol screen of five traffic factors on the light day;
- ``station_placement``: where a new fire station goes, among candidate nodes (Optuna).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["LIBRARY", "builtin_experiment", "builtin_experiments"]

LIBRARY = Path(__file__).resolve().parent


def builtin_experiments() -> list[str]:
    """Names of the built-in experiments."""
    return sorted(p.stem for p in LIBRARY.glob("*.yaml"))


def builtin_experiment(name: str) -> Path:
    """The file of a built-in experiment, named with or without ``.yaml``.

    Raises
    ------
    experiments.spec.ExperimentError
        No such file and no such built-in.
    """
    from experiments.spec import ExperimentError

    stem = name[:-5] if name.endswith(".yaml") else name
    path = LIBRARY / f"{stem}.yaml"
    if not path.exists():
        raise ExperimentError(
            f"no experiment file {name!r} and no built-in of that name (built-ins: {', '.join(builtin_experiments())})"
        )
    return path
