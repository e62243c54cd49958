"""Experiment specs: a base scenario, factors as dotted paths into it, a design, replications.

An experiment file is YAML (or a mapping), checked in full before any run starts; every
problem raises :class:`ExperimentError` naming the field (``factors[1].levels[2]: ...``)::

    name: ems_fleet_call_rate
    base: drill_evening_peak              # built-in name, file (relative to this one) or mapping
    factors:
      - {name: ambulances, path: "resources.stations[EMS 1].units.ambulance", levels: [1, 2, 3]}
      - {name: calls, path: incidents.rates.medical.per_hour, range: [4, 12]}
      - {name: policy, path: incidents.policy, choices: [closest, priority]}
    design: {kind: factorial}             # lhs | sobol | morris | optimize (see DESIGNS)
    replications: 10
    seed: 2026                            # root of every run's seed (numpy SeedSequence)
    outputs: {series: [network_vehicles]} # every KPI always; plus these result variables

A factor path walks the *resolved* scenario (:meth:`scenarios.Scenario.resolved`): dotted
keys, ``[3]`` for a list position and ``[Fire Station 2]`` for the list item with that
``name``.  Each level (or each end of a range) is written into the base scenario and the
result validated by the scenario schema, so a level of the wrong type is refused here, with
the schema's own message.

``function: "package.module:callable"`` replaces ``base`` for analytical test functions
(the Ishigami function in the tests, the benchmark's short runs): the callable gets the
point's factor values and the run's seed and returns a dict of KPIs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from basics.errors import InputError

__all__ = ["DESIGNS", "ExperimentError", "ExperimentSpec", "Factor", "load_experiment", "set_path"]

#: design kinds and the settings each takes (besides ``kind``)
DESIGNS: dict[str, dict[str, Any]] = {
    "factorial": {},
    "lhs": {"points": None},
    "sobol": {"base_samples": 64, "second_order": False},
    "morris": {"trajectories": 10, "levels": 4},
    "optimize": {"kpi": None, "direction": "minimize", "trials": 20, "batch": None},
}
_TOP = {"name", "description", "base", "function", "factors", "design", "replications", "seed", "outputs"}
_FACTOR_KEYS = {"name", "path", "levels", "range", "choices", "integer"}
_STEP = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]")


class ExperimentError(InputError):
    """An experiment spec that cannot be run, naming the field."""


@dataclass(frozen=True)
class Factor:
    """One factor of an experiment.

    Attributes
    ----------
    name : str
        Its coordinate name in the results.
    path : str
        Dotted path into the resolved scenario (empty with a ``function``).
    kind : {"levels", "range", "choices"}
        Discrete levels, a continuous (or ``integer``) range, or categorical choices.
    values : tuple
        The levels, the two ends of the range, or the choices.
    integer : bool
        A range of whole numbers.
    """

    name: str
    path: str
    kind: str
    values: tuple[Any, ...]
    integer: bool = False

    @property
    def numeric(self) -> bool:
        """True for a range, or levels that are all numbers."""
        if self.kind == "range":
            return True
        return self.kind == "levels" and all(_is_number(v) for v in self.values)


@dataclass
class ExperimentSpec:
    """A checked experiment (see the module docstring).

    Attributes
    ----------
    name : str
    factors : list of Factor
    design : dict
        ``kind`` plus its settings (defaults filled in).
    replications, seed : int
    base : dict or None
        The resolved base scenario (None with ``function``).
    function : str or None
        ``"module:callable"`` of an analytical model.
    series : list of str
        Result variables kept besides the KPIs.
    raw : dict
        The spec as given (with ``base`` resolved), what the store's attrs keep.
    """

    name: str
    factors: list[Factor]
    design: dict[str, Any]
    replications: int
    seed: int
    base: dict[str, Any] | None
    function: str | None = None
    series: list[str] = field(default_factory=list)
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        """SHA-256 (16 hex digits) of the canonical spec: equal specs, equal stores."""
        text = json.dumps(self.raw, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def scenario_for(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The base scenario with the factor values written in (a new dict)."""
        if self.base is None:
            raise ExperimentError("this experiment has a function, not a base scenario")
        doc = copy.deepcopy(self.base)
        for f in self.factors:
            set_path(doc, f.path, _plain(values[f.name]))
        return doc


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _plain(v: Any) -> Any:
    """Turn numpy scalars into Python ones (scenario validation wants plain types)."""
    return v.item() if hasattr(v, "item") and not isinstance(v, (str, bytes)) else v


def _steps(path: str) -> list[str | int | tuple[str]]:
    """``a.b[2][Name].c`` -> ``["a", "b", 2, ("Name",), "c"]``."""
    out: list[str | int | tuple[str]] = []
    pos = 0
    for m in _STEP.finditer(path):
        if m.start() != pos and path[pos : m.start()] != ".":
            raise ValueError(f"cannot read {path!r} near {path[pos:]!r}")
        pos = m.end()
        key, idx = m.group(1), m.group(2)
        if key is not None:
            out.append(key)
        elif idx.strip().lstrip("-").isdigit():
            out.append(int(idx))
        else:
            out.append((idx.strip(),))
    if not out or pos != len(path):
        raise ValueError(f"cannot read the path {path!r}")
    return out


def _step_into(node: Any, step: str | int | tuple[str], where: str) -> Any:
    if isinstance(step, str):
        if not isinstance(node, dict) or step not in node:
            known = ", ".join(sorted(node)) if isinstance(node, dict) else type(node).__name__
            raise KeyError(f"no field {step!r} under {where or 'the scenario'} (there: {known})")
        return node[step]
    if not isinstance(node, list):
        raise KeyError(f"{where} is not a list")
    if isinstance(step, int):
        if not -len(node) <= step < len(node):
            raise KeyError(f"{where} has {len(node)} item(s), no [{step}]")
        return node[step]
    names = [item.get("name") for item in node if isinstance(item, dict)]
    for item in node:
        if isinstance(item, dict) and item.get("name") == step[0]:
            return item
    raise KeyError(f"no item named {step[0]!r} in {where} (named: {', '.join(map(str, names)) or 'none'})")


def set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    """Write ``value`` at ``path`` in ``doc`` (the last key may be new; the rest must exist).

    Raises
    ------
    KeyError
        A step that is not there, with what is.
    """
    steps = _steps(path)
    node: Any = doc
    where = ""
    for step in steps[:-1]:
        node = _step_into(node, step, where)
        where = f"{where}.{step}" if isinstance(step, str) and where else (where + _fmt_step(step))
    last = steps[-1]
    if isinstance(last, str):
        if not isinstance(node, dict):
            raise KeyError(f"{where} is not a mapping")
        node[last] = value
    elif isinstance(last, int):
        _step_into(node, last, where)
        node[last] = value
    else:
        raise KeyError(f"{path}: a path ends in a field, not a list item")


def _fmt_step(step: str | int | tuple[str]) -> str:
    if isinstance(step, str):
        return step
    return f"[{step if isinstance(step, int) else step[0]}]"


# ------------------------------------------------------------------------ checking


def _factor(i: int, raw: Any, *, with_function: bool) -> Factor:
    where = f"factors[{i}]"
    if not isinstance(raw, Mapping):
        raise ExperimentError(f"{where}: expected a mapping with path and levels, range or choices")
    unknown = set(raw) - _FACTOR_KEYS
    if unknown:
        raise ExperimentError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    path = raw.get("path", "")
    if not with_function and not (isinstance(path, str) and path):
        raise ExperimentError(f"{where}.path: required (a dotted path into the scenario)")
    if path:
        try:
            _steps(path)
        except ValueError as exc:
            raise ExperimentError(f"{where}.path: {exc}") from None
    name = raw.get("name") or re.sub(r"\W+", "_", path.split(".")[-1]).strip("_")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ExperimentError(f"{where}.name: a plain identifier, got {name!r}")
    kinds = [k for k in ("levels", "range", "choices") if k in raw]
    if len(kinds) != 1:
        raise ExperimentError(f"{where}: give exactly one of levels, range or choices")
    kind = kinds[0]
    values = raw[kind]
    if not isinstance(values, list) or not values:
        raise ExperimentError(f"{where}.{kind}: a non-empty list, got {values!r}")
    if kind == "range":
        if len(values) != 2 or not all(_is_number(v) for v in values) or not values[0] < values[1]:
            raise ExperimentError(f"{where}.range: two numbers [low, high] with low < high, got {values!r}")
    if len(set(map(repr, values))) != len(values):
        raise ExperimentError(f"{where}.{kind}: repeated values in {values!r}")
    return Factor(name, path, kind, tuple(values), bool(raw.get("integer", False)))


def _design(raw: Any, factors: list[Factor]) -> dict[str, Any]:
    if isinstance(raw, str):
        raw = {"kind": raw}
    if not isinstance(raw, Mapping) or raw.get("kind") not in DESIGNS:
        kinds = ", ".join(DESIGNS)
        raise ExperimentError(
            f"design.kind: one of {kinds}, got {raw.get('kind') if isinstance(raw, Mapping) else raw!r}"
        )
    kind = raw["kind"]
    unknown = set(raw) - set(DESIGNS[kind]) - {"kind"}
    if unknown:
        raise ExperimentError(f"design: unknown field(s) {', '.join(sorted(unknown))} for kind {kind!r}")
    design = {"kind": kind, **DESIGNS[kind], **raw}
    for key, value in design.items():
        if key in ("points", "base_samples", "trajectories", "levels", "trials", "batch") and value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ExperimentError(f"design.{key}: a whole number of at least 1, got {value!r}")
    if kind == "lhs" and design["points"] is None:
        raise ExperimentError("design.points: required for a Latin hypercube (how many points)")
    if kind in ("lhs", "sobol", "morris"):
        for i, f in enumerate(factors):
            if f.kind != "range":
                raise ExperimentError(f"factors[{i}]: a {kind} design needs a range, not {f.kind}")
    if kind in ("sobol", "morris") and len(factors) < 2:
        raise ExperimentError(f"factors: a {kind} design needs two or more factors")
    if kind == "optimize":
        if not isinstance(design["kpi"], str):
            raise ExperimentError("design.kpi: required (the KPI to minimise or maximise)")
        if design["direction"] not in ("minimize", "maximize"):
            raise ExperimentError(f"design.direction: minimize or maximize, got {design['direction']!r}")
    return design


def _load_base(raw: Any, folder: Path | None) -> dict[str, Any]:
    from scenarios import ScenarioError, load_scenario

    source = raw
    if isinstance(raw, str) and folder is not None and not Path(raw).is_absolute() and (folder / raw).exists():
        source = str(folder / raw)
    try:
        return load_scenario(source).resolved()
    except ScenarioError as exc:
        raise ExperimentError(f"base: {exc}") from None


def _check_levels(spec: ExperimentSpec) -> None:
    """Write each level (each end of a range) into the base and validate the scenario."""
    from scenarios import ScenarioError, load_scenario

    assert spec.base is not None
    for i, f in enumerate(spec.factors):
        key = "range" if f.kind == "range" else f.kind
        for j, value in enumerate(f.values):
            doc = copy.deepcopy(spec.base)
            try:
                set_path(doc, f.path, int(value) if f.integer else value)
            except KeyError as exc:
                raise ExperimentError(f"factors[{i}].path: {exc.args[0]}") from None
            try:
                load_scenario(doc)
            except ScenarioError as exc:
                raise ExperimentError(f"factors[{i}].{key}[{j}] = {value!r} ({f.path}): {exc}") from None


def _function(raw: Mapping[str, Any], *, trusted: bool) -> str | None:
    """The spec's ``function`` (checked), or None with a ``base``."""
    function = raw.get("function")
    if (function is None) == (raw.get("base") is None):
        raise ExperimentError("base: give a base scenario (or, for an analytical model, a function), not both")
    if function is not None and (not isinstance(function, str) or ":" not in function):
        raise ExperimentError(f"function: 'package.module:callable', got {function!r}")
    if function is not None and not trusted:
        from twin.emergency.dispatch import allowed_plugins

        if function not in allowed_plugins():  # issue 15: a file never runs code on its own say
            raise ExperimentError(
                f"function: {function!r} would run code named by the file; trust it with --allow-plugins {function}"
            )
    return None if function is None else str(function)


def _read_source(source: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[dict[str, Any], Path | None]:
    """The spec's fields and the folder relative paths start from (None for a mapping)."""
    folder = None
    if isinstance(source, Mapping):
        raw = dict(source)
    else:
        import yaml

        path = Path(source)
        if not path.exists():
            from experiments.library import builtin_experiment

            path = builtin_experiment(str(source))
        folder = path.parent
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ExperimentError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ExperimentError(f"{path}: expected a mapping of fields")
    return raw, folder


def load_experiment(source: str | os.PathLike[str] | Mapping[str, Any]) -> ExperimentSpec:
    """Read and check an experiment (file or mapping); nothing runs.

    Parameters
    ----------
    source : path or mapping
        A YAML file, or the same as a mapping.

    Returns
    -------
    ExperimentSpec

    Raises
    ------
    ExperimentError
        The first problem, naming the field.
    """
    raw, folder = _read_source(source)
    unknown = set(raw) - _TOP
    if unknown:
        raise ExperimentError(f"unknown field(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(_TOP))})")
    function = _function(raw, trusted=isinstance(source, Mapping))
    factors_raw = raw.get("factors")
    if not isinstance(factors_raw, list) or not factors_raw:
        raise ExperimentError("factors: a non-empty list (a design with no factor has no points)")
    factors = [_factor(i, f, with_function=function is not None) for i, f in enumerate(factors_raw)]
    names = [f.name for f in factors]
    if len(set(names)) != len(names):
        raise ExperimentError(f"factors: names must differ, got {names}")
    design = _design(raw.get("design", "factorial"), factors)
    reps = raw.get("replications", 1)
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise ExperimentError(f"replications: a whole number of at least 1, got {reps!r}")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ExperimentError(f"seed: a whole number of 0 or more, got {seed!r}")
    outputs = raw.get("outputs") or {}
    series = outputs.get("series", []) if isinstance(outputs, Mapping) else None
    if not isinstance(series, list) or not all(isinstance(s, str) for s in series):
        raise ExperimentError(f"outputs.series: a list of result variable names, got {series!r}")
    base = None if function is not None else _load_base(raw["base"], folder)
    spec = ExperimentSpec(
        name=str(raw.get("name") or (Path(str(source)).stem if not isinstance(source, Mapping) else "experiment")),
        factors=factors,
        design=design,
        replications=reps,
        seed=seed,
        base=base,
        function=function,
        series=list(series),
        description=str(raw.get("description", "")),
    )
    spec.raw = {**{k: v for k, v in raw.items() if k != "base"}, "base": base, "design": design}
    if base is not None:
        _check_levels(spec)
    from experiments.design import design_points

    if not design_points(spec):  # a design that would run nothing
        raise ExperimentError("design: it has zero points")
    return spec
