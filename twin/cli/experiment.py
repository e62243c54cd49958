"""``twin experiment run|analyze``: batch experiments (designs, replications, sensitivity, optimisation).

::

    twin experiment run SPEC.yaml [--out STORE] [--workers N | --scheduler tcp://HOST:PORT]
    twin experiment analyze STORE [--out DIR]
    twin experiment list

``run`` writes a Zarr store as runs finish and resumes one already there; ``analyze``
writes ``index.html``, the PNGs and the analysis Datasets (NetCDF) into ``DIR``.  The
same from Python: :func:`experiments.runner.run_experiment` and
:func:`experiments.analyze.analyze`.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from rich.console import Console
from rich.table import Table

__all__ = ["add_commands", "analysis_figures", "write_analysis"]


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _fmt(value: object) -> str:
    from viz.data import fmt_value

    return fmt_value(value)


# ------------------------------------------------------------------------ figures


def _effects_figure(points: xr.Dataset, effects: xr.Dataset, kpis: list[str]) -> Any:
    import matplotlib.pyplot as plt

    factors = [str(n)[len("effect_") :] for n in effects.data_vars]
    fig, axes = plt.subplots(len(kpis), len(factors), figsize=(3.2 * len(factors), 2.6 * len(kpis)), squeeze=False)
    for i, kpi in enumerate(kpis):
        for j, f in enumerate(factors):
            eff = effects[f"effect_{f}"].sel(kpi=kpi)
            ax = axes[i, j]
            ax.plot([str(v) for v in eff[f"level_{f}"].values], eff.values, "o-")
            ax.set_xlabel(f)
            if j == 0:
                ax.set_ylabel(str(points["kpi_label"].sel(kpi=kpi).values), fontsize=8)
    fig.suptitle("Main effects (mean over the other factors and the replications)")
    fig.tight_layout()
    return fig


def _interaction_figure(points: xr.Dataset, factors: list[str], kpi: str) -> Any:
    import matplotlib.pyplot as plt

    a, b = factors[:2]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    mean = points["mean"].sel(kpi=kpi)
    for level in np.unique(points[b].values):
        sel = points[b].values == level
        xs = [str(v) for v in points[a].values[sel]]
        ax.plot(xs, mean.values[sel], "o-", label=f"{b} = {level}")
    ax.set_xlabel(a)
    ax.set_ylabel(str(points["kpi_label"].sel(kpi=kpi).values))
    ax.legend(fontsize=8)
    ax.set_title(f"Interaction of {a} and {b}")
    fig.tight_layout()
    return fig


def _indices_figure(ind: xr.Dataset, kpi: str) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    names = [str(f) for f in ind["factor"].values]
    x = np.arange(len(names))
    row = ind.sel(kpi=kpi)
    if "S1" in ind:
        ax.bar(x - 0.2, row["S1"], 0.4, yerr=row["S1_conf"], label="first order S1")
        ax.bar(x + 0.2, row["ST"], 0.4, yerr=row["ST_conf"], label="total ST")
        ax.set_ylabel("Sobol index")
    else:
        ax.errorbar(row["mu_star"], row["sigma"], xerr=row["mu_star_conf"], fmt="o")
        for xi, yi, name in zip(row["mu_star"].values, row["sigma"].values, names, strict=True):
            ax.annotate(name, (xi, yi), fontsize=8)
        ax.set_xlabel("mu*")
        ax.set_ylabel("sigma")
    if "S1" in ind:
        ax.set_xticks(x, names)
        ax.legend(fontsize=8)
    ax.set_title(kpi)
    fig.tight_layout()
    return fig


def _history_figure(hist: xr.Dataset) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    x = hist["point"].values
    ax.errorbar(
        x,
        hist["value"],
        yerr=[hist["value"] - hist["ci_low"], hist["ci_high"] - hist["value"]],
        fmt="o",
        label="trial (95 % interval)",
    )
    ax.step(x, hist["best_so_far"], where="post", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(hist.attrs["kpi"])
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _shown_kpis(points: xr.Dataset, limit: int = 4) -> list[str]:
    """KPIs that vary across points (the most varying first), at most ``limit``."""
    mean = points["mean"].values
    spread = np.nan_to_num(np.nanstd(mean, axis=1) / (np.abs(np.nanmean(mean, axis=1)) + 1e-12), nan=-1.0)
    order = np.argsort(-spread, kind="stable")
    return [str(points["kpi"].values[i]) for i in order[:limit] if spread[i] > 0] or [str(points["kpi"].values[0])]


def analysis_figures(results: dict[str, xr.Dataset]) -> dict[str, bytes]:
    """The analysis' PNGs (file name -> bytes)."""
    import matplotlib.pyplot as plt

    from viz.charts import png_bytes

    points = results["points"]
    kpis = _shown_kpis(points)
    figs: dict[str, Any] = {}
    if "main_effects" in results:
        figs["main_effects.png"] = _effects_figure(points, results["main_effects"], kpis)
        factors = [str(n)[len("effect_") :] for n in results["main_effects"].data_vars]
        if len(factors) >= 2:
            figs["interaction.png"] = _interaction_figure(points, factors, kpis[0])
    for kind in ("sobol", "morris"):
        if kind in results:
            for kpi in kpis:
                figs[f"{kind}_{kpi}.png"] = _indices_figure(results[kind], kpi)
    if "history" in results and "value" in results["history"]:
        figs["optimisation_history.png"] = _history_figure(results["history"])
    out = {}
    for name, fig in figs.items():
        out[name] = png_bytes(fig)
        plt.close(fig)
    return out


# ------------------------------------------------------------------------ page


def _table_html(ds: xr.Dataset, kpis: list[str], factors: list[str]) -> str:
    head = "".join(f"<th>{_e(f)}</th>" for f in factors) + "".join(f"<th>{_e(k)} (95 % CI)</th>" for k in kpis)
    rows = []
    for p in range(ds.sizes["point"]):
        cells = "".join(f"<td>{_e(ds[f].values[p])}</td>" for f in factors)
        for k in kpis:
            m, lo, hi = (float(ds[v].sel(kpi=k).values[p]) for v in ("mean", "ci_low", "ci_high"))
            cells += f"<td class='num'>{_e(_fmt(m))} [{_e(_fmt(lo))}, {_e(_fmt(hi))}]</td>"
        rows.append(f"<tr><td>{p}</td>{cells}</tr>")
    return f"<table><tr><th>point</th>{head}</tr>{''.join(rows)}</table>"


def _indices_html(ind: xr.Dataset) -> str:
    cols = list(ind.data_vars)
    rows = []
    for kpi in ind["kpi"].values:
        for f in ind["factor"].values:
            vals = "".join(f"<td class='num'>{_e(_fmt(float(ind[c].sel(kpi=kpi, factor=f))))}</td>" for c in cols)
            rows.append(f"<tr><td>{_e(kpi)}</td><td>{_e(f)}</td>{vals}</tr>")
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    return f"<table><tr><th>KPI</th><th>factor</th>{head}</tr>{''.join(rows)}</table>"


def write_analysis(results: dict[str, xr.Dataset], out: str | Path) -> list[Path]:
    """Write ``index.html``, the PNGs and each Dataset as NetCDF into ``out``; return the files."""
    from basics.atomic import atomic_path
    from basics.atomic import write_bytes as atomic_write_bytes
    from viz.report import _CSS

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    points = results["points"]
    factors = [str(c) for c in points.coords if c not in ("kpi", "point")]
    figs = analysis_figures(results)
    written = []
    for name, png in figs.items():
        atomic_write_bytes(folder / name, png)
        written.append(folder / name)
    for name, ds in results.items():
        path = folder / f"{name}.nc"
        with atomic_path(path) as tmp:
            ds.to_netcdf(tmp)
        written.append(path)
    a = points.attrs
    parts = [
        f"<h1>Experiment {_e(a.get('name', ''))}</h1>",
        f"<p class='meta'>design {_e(a.get('design'))}; {a.get('done')} of {a.get('runs')} runs done, "
        f"{a.get('failed')} failed; spec hash {_e(a.get('spec_hash'))}</p>",
        "<h2>KPIs per design point</h2>",
        _table_html(points, _shown_kpis(points), factors),
    ]
    for kind in ("sobol", "morris"):
        if kind in results:
            parts += [f"<h2>{kind.capitalize()} indices (SALib, 95 % confidence)</h2>", _indices_html(results[kind])]
    if "history" in results and "best_point" in results["history"].attrs:
        h = results["history"]
        parts.append(
            f"<h2>Optimisation</h2><p>best trial: point {h.attrs['best_point']} ({_e(h.attrs['kpi'])}, "
            f"{_e(h.attrs['direction'])})</p>"
        )
    for name, png in figs.items():
        b64 = base64.b64encode(png).decode("ascii")
        parts.append(f"<figure><img alt='{_e(name)}' src='data:image/png;base64,{b64}'></figure>")
    page = f"<!doctype html><html><head><meta charset='utf-8'><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>"
    atomic_write_bytes(folder / "index.html", page.encode("utf-8"))
    written.append(folder / "index.html")
    return written


# ------------------------------------------------------------------------ commands


def _cmd_run(args: Any, console: Console) -> int:
    from experiments.runner import run_experiment
    from experiments.spec import load_experiment
    from twin.emergency.dispatch import allow_plugins

    allow_plugins(args.allow_plugins_run)
    spec = load_experiment(args.spec)  # every problem, before any run
    out = Path(args.out) if args.out else Path("runs") / f"{spec.name}.zarr"
    if args.workers is not None and args.scheduler is not None:
        from experiments.spec import ExperimentError

        raise ExperimentError("--workers and --scheduler: give one (local workers, or a running cluster)")
    res = run_experiment(
        spec,
        out,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=not args.quiet,
        retry_failed=args.retry_failed,
        overwrite=args.overwrite,
    )
    table = Table(title=f"experiment {spec.name}")
    for col in ("runs", "done", "failed", "skipped (done before)", "seconds"):
        table.add_column(col, justify="right")
    table.add_row(str(res.runs), str(res.done), str(res.failed), str(res.skipped), f"{res.wall_s:.1f}")
    console.print(table)
    console.print(f"store: {out}  (analyse: twin experiment analyze {out})")
    return 1 if res.failed else 0


def _cmd_analyze(args: Any, console: Console) -> int:
    from experiments.analyze import analyze

    store = Path(args.store)
    results = analyze(store)
    out = Path(args.out) if args.out else store.with_name(store.name.removesuffix(".zarr") + "-analysis")
    files = write_analysis(results, out)
    points = results["points"]
    kpis = _shown_kpis(points, limit=2)
    table = Table(title=f"{points.attrs.get('name')}: KPI means (95 % CI)")
    factors = [str(c) for c in points.coords if c not in ("kpi", "point")]
    for col in ("point", *factors, *kpis):
        table.add_column(col, overflow="fold")
    for p in range(min(points.sizes["point"], 20)):
        cells = [str(p), *(str(points[f].values[p]) for f in factors)]
        for k in kpis:
            m, lo, hi = (float(points[v].sel(kpi=k).values[p]) for v in ("mean", "ci_low", "ci_high"))
            cells.append(f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]")
        table.add_row(*cells)
    console.print(table)
    console.print(f"wrote {len(files)} files to {out} (open {out / 'index.html'})")
    return 0


def _cmd_list(args: Any, console: Console) -> int:
    from experiments.library import builtin_experiments
    from experiments.spec import load_experiment

    for name in builtin_experiments():
        console.print(f"[bold]{name}[/]: {load_experiment(name).description}", highlight=False)
    return 0


def add_commands(sub: Any) -> None:
    """Register ``twin experiment run|analyze|list``."""
    e = sub.add_parser("experiment", help="batch experiments: designs, replications, sensitivity, optimisation")
    esub = e.add_subparsers(dest="experiment_command", required=True)
    r = esub.add_parser("run", help="run an experiment into a Zarr store (resumes one already there)")
    r.add_argument("spec", help="experiment file (YAML) or built-in name (twin experiment list)")
    r.add_argument("--out", help="the Zarr store (default: runs/<name>.zarr)")
    r.add_argument("--workers", type=int, help="local worker processes (default: the cores); 0 runs in this process")
    r.add_argument("--scheduler", help="address of a running Dask scheduler (tcp://HOST:PORT)")
    r.add_argument("--retry-failed", action="store_true", help="run again the runs that failed last time")
    r.add_argument("--overwrite", action="store_true", help="replace a store of another experiment at --out")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.add_argument(
        "--allow-plugins",
        dest="allow_plugins_run",
        action="append",
        metavar="MODULE:FUNCTION",
        help="trust this plug-in (a dispatch policy, or the spec's function) here too",
    )
    r.set_defaults(func=_cmd_run)
    a = esub.add_parser("analyze", help="KPI intervals, effects, sensitivity indices, optimisation history")
    a.add_argument("store", help="the experiment's Zarr store")
    a.add_argument("--out", help="folder for index.html, PNGs and NetCDF (default: STORE-analysis)")
    a.set_defaults(func=_cmd_analyze)
    li = esub.add_parser("list", help="the built-in experiments")
    li.set_defaults(func=_cmd_list)
