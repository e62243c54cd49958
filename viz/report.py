"""One self-contained HTML report of a run or a comparison, plus its figures as PNG.

::

    from viz.report import write_report
    html_path, pngs = write_report("runs/default-seed0")            # runs/default-seed0/report.html
    write_report("runs/bridge-vs-base", out="bridge.html")            # bridge.html, bridge-*.png

The HTML has no external references: CSS is inline and the figures are
embedded as base64 PNG, so the file can be mailed or opened offline.  Each
figure is also written beside it as ``<stem>-<figure>.png`` for slides.
Every file is written atomically (a temporary file renamed over the target).
"""

from __future__ import annotations

import base64
import html
import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from basics.atomic import write_bytes
from basics.errors import InputError
from viz import charts
from viz.data import (
    Results,
    clock_label,
    fmt_value,
    intervened_mask,
    is_finite_number,
    kpi_label,
    open_results,
    time_index,
)
from viz.sections import operations_sections, stranded_note, traffic_sections, travel_section

__all__ = ["write_report", "build_report", "kpi_rows"]

log = logging.getLogger(__name__)

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.meta{color:#555;font-size:.92em}table{border-collapse:collapse;margin:.6em 0;font-size:.93em}
th,td{padding:.28em .7em;border-bottom:1px solid #e4e4e4;text-align:left}th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}.sig{color:#b00020;font-weight:600}.nsig{color:#888}
h3{font-size:1.05em;margin:1em 0 .2em}figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}figcaption{color:#555;font-size:.9em}
.note{color:#666;font-size:.88em}.stranded{background:#fde0dd;border-left:4px solid #b2182b;padding:.4em .7em;font-weight:600}.tag{background:#ff00ff;color:white;border-radius:3px;padding:0 .3em;font-size:.8em}
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def kpi_rows(res: Results) -> list[dict]:
    """KPI rows for the table: run -> key/label/unit/value; comparison -> summary rows with labels filled in."""
    if res.kind == "comparison":
        rows = []
        for i, r in enumerate(res.summary.get("kpis", [])):
            if not isinstance(r, dict) or "key" not in r:
                raise InputError(f"{res.path / 'summary.json'}: kpis[{i}] has no 'key'")
            label, unit = kpi_label(r["key"], res.kpi_labels)
            rows.append({**r, "label": r.get("label") or label, "unit": r.get("unit", unit)})
        return rows
    kpis = res.summary.get("kpis")
    if not isinstance(kpis, dict):  # no summary.json: the Dataset's attrs carry the same values
        kpis = {k[4:]: v for k, v in res.ds.attrs.items() if k.startswith("kpi_")}
    rows = []
    for key, value in kpis.items():
        label, unit = kpi_label(key, res.kpi_labels)
        rows.append({"key": key, "label": label, "unit": unit, "value": value})
    return rows


def _kpi_table(res: Results, rows: list[dict]) -> str:
    if not rows:
        return "<p class='note'>No KPIs recorded.</p>"
    if res.kind == "run":
        body = "".join(
            f"<tr><td>{_e(r['label'])}</td><td class='num'>{_e(fmt_value(r['value']))}</td><td>{_e(r['unit'])}</td></tr>"
            for r in rows
        )
        return f"<table class='kpis'><tr><th>KPI</th><th>value</th><th>unit</th></tr>{body}</table>"
    out = []
    for r in rows:
        b, s, d = r.get("baseline"), r.get("scenario"), r.get("difference")
        lo, hi = r.get("ci_low"), r.get("ci_high")
        rel = "–"
        if is_finite_number(b) and is_finite_number(d) and b:
            rel = f"{100.0 * d / abs(b):+.1f}%"
        sig = r.get("significant")
        if sig is None:
            verdict = "<td class='nsig'>–</td>"
        elif sig:
            verdict = "<td class='sig'>significant</td>"
        else:
            verdict = "<td class='nsig'>not significant</td>"
        diff = fmt_value(d)
        if isinstance(d, (int, float)) and np.isfinite(d) and d > 0:
            diff = "+" + diff
        out.append(
            f"<tr><td>{_e(r['label'])}</td><td>{_e(r.get('unit', ''))}</td><td class='num'>{_e(fmt_value(b))}</td>"
            f"<td class='num'>{_e(fmt_value(s))}</td><td class='num'>{_e(diff)}</td><td class='num'>{_e(rel)}</td>"
            f"<td class='num'>[{_e(fmt_value(lo))}, {_e(fmt_value(hi))}]</td>{verdict}</tr>"
        )
    head = (
        "<tr><th>KPI</th><th>unit</th><th>baseline</th><th>scenario</th><th>difference</th><th>change</th>"
        "<th>95% interval of the difference</th><th>verdict</th></tr>"
    )
    return f"<table class='kpis'>{head}{''.join(out)}</table>"


def _signed(value: float, digits: int) -> str:
    """``+1.5`` / ``-2`` / ``0`` (no ``-0``), ``–`` for NaN."""
    if not np.isfinite(value):
        return "–"
    v = round(float(value), digits)
    if v == 0:
        return "0"
    return f"{v:+,.{digits}f}"


def _link_names(res: Results) -> np.ndarray:
    ds = res.ds
    if "link_name" in ds:
        return np.asarray(ds["link_name"].values, dtype=str)
    return np.array([""] * ds.sizes["link"])


def _link_table(res: Results, index: int | None) -> tuple[str, str]:
    """(heading, table) of the ten links that matter most: largest speed changes or slowest links."""
    ds = res.ds
    names = _link_names(res)
    kinds = np.asarray(ds["link_kind"].values, dtype=str) if "link_kind" in ds else np.array([""] * ds.sizes["link"])
    links = np.asarray(ds["link"].values)
    mark = intervened_mask(res)

    def tag(i):
        return " <span class='tag'>intervened</span>" if mark[i] else ""

    if res.kind == "comparison":
        sp = ds["link_speed"]
        extra = [d for d in sp.dims if d not in ("variant", "time", "link")]
        if extra:
            sp = sp.mean(extra)
        base = np.asarray(sp.sel(variant="baseline").mean("time").values) * 3.6
        scen = np.asarray(sp.sel(variant="scenario").mean("time").values) * 3.6
        diff = charts.speed_difference(res)
        flow = charts.flow_difference(res)
        order = np.argsort(-np.nan_to_num(np.abs(diff)), kind="stable")[:10]

        def change_rows(sel):
            return "".join(
                f"<tr><td class='num'>{links[i]}</td><td>{_e(names[i])}{tag(i)}</td><td>{_e(kinds[i])}</td>"
                f"<td class='num'>{base[i]:.1f}</td><td class='num'>{scen[i]:.1f}</td><td class='num'>{_signed(diff[i], 1)}</td>"
                f"<td class='num'>{'–' if flow is None else _signed(flow[i], 0)}</td></tr>"
                for i in sel
            )

        head = (
            "<tr><th>link</th><th>road</th><th>class</th><th>baseline speed (km/h)</th><th>scenario speed (km/h)</th>"
            "<th>change (km/h)</th><th>change in vehicles</th></tr>"
        )
        out = ""
        if mark.any():
            out += (
                f"<h3>Intervened links</h3><table>{head}{change_rows(np.flatnonzero(mark))}</table><h3>All links</h3>"
            )
        return (
            "Links with the largest speed change (mean over the run)",
            out + f"<table>{head}{change_rows(order)}</table>",
        )
    assert index is not None  # a run's table is of one output interval; None only for comparisons
    speed = np.asarray(ds["link_speed"].isel(time=index).values) * 3.6
    free = np.asarray(ds["link_free_speed"].values) * 3.6 if "link_free_speed" in ds else np.full(speed.shape, np.nan)
    veh = (
        np.asarray(ds["link_vehicles"].isel(time=index).values)
        if "link_vehicles" in ds
        else np.full(speed.shape, np.nan)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(free > 0, speed / free, np.nan)
    order = np.argsort(np.nan_to_num(ratio, nan=np.inf), kind="stable")[:10]

    def rows(sel):
        return "".join(
            f"<tr><td class='num'>{links[i]}</td><td>{_e(names[i])}{tag(i)}</td><td>{_e(kinds[i])}</td>"
            f"<td class='num'>{speed[i]:.1f}</td><td class='num'>{free[i]:.1f}</td><td class='num'>{100 * ratio[i]:.0f}%</td>"
            f"<td class='num'>{veh[i]:.1f}</td></tr>"
            for i in sel
        )

    head = (
        "<tr><th>link</th><th>road</th><th>class</th><th>speed (km/h)</th><th>free-flow (km/h)</th>"
        "<th>of free-flow</th><th>vehicles on it</th></tr>"
    )
    labels = res.clock_labels()
    start = labels[index - 1] if index > 0 else clock_label(res.start_clock_s)
    out = ""
    if mark.any():
        out += f"<h3>Intervened links</h3><table>{head}{rows(np.flatnonzero(mark))}</table><h3>All links</h3>"
    return f"Slowest links, {start}-{labels[index]} (busiest interval)", out + f"<table>{head}{rows(order)}</table>"


def _meta(res: Results) -> str:
    ds, sm = res.ds, res.summary
    items = []
    if res.kind == "comparison":
        items += [
            ("compared", sm.get("response_label")),
            ("baseline", sm.get("baseline")),
            ("scenario", sm.get("scenario")),
            ("replications", sm.get("replications")),
            ("seeds", ", ".join(map(str, sm.get("seeds", [])[:20]))),
        ]
    else:
        items += [
            ("scenario", ds.attrs.get("scenario_name", sm.get("scenario"))),
            ("seed", ds.attrs.get("seed", sm.get("seed"))),
            ("scenario hash", ds.attrs.get("scenario_hash", sm.get("scenario_hash"))),
        ]
    items += [
        (
            "city",
            ds.attrs.get(
                "city", (sm.get("city") or {}).get("name") if isinstance(sm.get("city"), dict) else sm.get("city")
            ),
        )
    ]
    if res.times.size:
        items.append(
            (
                "period",
                f"{clock_label(res.start_clock_s)}-{clock_label(res.start_clock_s + res.times[-1])}, "
                f"{res.times.size} intervals of {res.times[0] / 60:g} min",
            )
        )
    items += [
        ("links", f"{res.ds.sizes['link']:,}"),
        ("package version", ds.attrs.get("package_version", sm.get("package_version"))),
    ]
    return " · ".join(f"{_e(k)}: <b>{_e(v)}</b>" for k, v in items if v not in (None, ""))


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"


def build_report(res: Results) -> tuple[str, dict[str, bytes]]:
    """The report's HTML text and its figures (name -> PNG bytes).

    Order: KPIs (with the trips stranded called out), the traffic figures and maps, the
    operations figures (coverage, emergency response, evacuation, shadow mode), the table
    of the links that matter most, the travel times.
    """
    rows = kpi_rows(res)
    index = time_index(res, None) if res.kind == "run" else None
    traffic = traffic_sections(res, rows, index)
    ops = operations_sections(res)
    travel = travel_section(res)
    figs = {name: png for name, _, png, _ in [*traffic, *ops, travel]}
    heading, table = _link_table(res, index)
    title = f"{'Comparison' if res.kind == 'comparison' else 'Run'} report: {res.name}"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1><p class='meta'>{_meta(res)}</p>",
        "<h2>Key performance indicators</h2>",
    ]
    note = stranded_note(res, rows)
    if note:
        parts.append(f"<p class='stranded'>{_e(note)}</p>")
    parts.append(_kpi_table(res, rows))
    if res.kind == "comparison":
        parts.append(
            "<p class='note'>Difference = scenario − baseline, averaged over replications run with common random "
            "numbers. A difference whose 95% interval contains zero is marked <i>not significant</i>.</p>"
        )
    parts += [_figure(*sec) for sec in [*traffic, *ops]]
    parts.append(f"<h2>{_e(heading)}</h2>{table}")
    parts.append(_figure(*travel))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f"<p class='note'>Made by <code>twin report</code> from <code>{_e(res.path)}</code> on {stamp}.</p>")
    parts.append("</body></html>")
    return "".join(parts), figs


def _figure(name: str, title: str, png: bytes, caption: str) -> str:
    """One figure section: heading, image, caption."""
    return f"<h2>{_e(title)}</h2><figure>{_img(png, title)}<figcaption>{_e(caption)}</figcaption></figure>"


def write_report(path: str | Path, *, out: str | Path | None = None) -> tuple[Path, list[Path]]:
    """Write the HTML report of a run or comparison folder and its figures as PNG.

    Parameters
    ----------
    path
        A run folder (``twin run``) or a comparison folder (``twin compare``).
    out
        The HTML file (default: ``report.html`` in the folder).  Figures go
        beside it as ``<stem>-<figure>.png``.

    Returns
    -------
    (html_path, png_paths)
    """
    res = open_results(path)
    out_path = Path(out) if out is not None else res.path / "report.html"
    if out_path.is_dir():
        raise InputError(f"--out {str(out_path)!r} is a folder; give the HTML file to write (e.g. report.html)")
    if out_path.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--out {str(out_path)!r}: the report is an HTML file; give a name ending in .html")
    text, figs = build_report(res)
    pngs = []
    for name, data in figs.items():
        p = out_path.with_name(f"{out_path.stem}-{name}.png")
        write_bytes(p, data)
        pngs.append(p)
    write_bytes(out_path, text.encode("utf-8"))
    log.info("report written to %s (%d figures)", out_path, len(pngs))
    return out_path, pngs
