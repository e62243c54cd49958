"""The city in 3D (pyvista, offscreen): blocks, roads coloured by traffic, stations and incidents.

::

    from viz.scene import render
    render("runs/default-seed0", out="scene.png", when="08:15", color="speed")
    render("runs/default-seed0", out="scene.png", animate="day.mp4", frames=96)

What is drawn, all from the run's ``results.nc`` (nothing is simulated):

- **blocks**: building boxes filling the space between roads (a grid of lots
  kept clear of every link), each lot taking the zone of its nearest node;
  height grows with the zone's jobs and residents, colour shifts from
  residential (warm) to commercial (blue-grey) with its share of jobs.  A
  deterministic hash of the lot's position varies heights, so the same run
  always gives the same picture.  (The results carry no building footprints;
  when they do, they should replace these lots.)
- **roads**: one tube per link, each direction on its own side, coloured by
  speed (km/h) or density (vehicles per km per lane) in the chosen output
  interval; intervened links (a link variable named ``*intervened*``) get a
  magenta sleeve.
- **glyphs**: facilities (stations, hospitals) as coloured beacons; incidents
  active at the time as orange cones (see :func:`viz.data.incidents_at`).

Rendering is offscreen: on a machine without a display, VTK is pointed at
EGL (``VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow``) before it loads.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from basics.atomic import atomic_path
from basics.errors import InputError
from viz.data import Results, clock_label, incidents_at, intervened_mask, link_offsets, open_results, sites, time_index

if TYPE_CHECKING:  # pyvista is optional at run time (the `viz3d` extra)
    import pyvista

__all__ = ["render", "build_scene", "Scene", "city_blocks", "COLOR_BY"]

log = logging.getLogger(__name__)

#: what roads can be coloured by
COLOR_BY = ("speed", "density")

_FACILITY_RGB = {
    "fire_station": (0.85, 0.15, 0.15),
    "ems_station": (0.15, 0.65, 0.2),
    "police_station": (0.15, 0.25, 0.85),
    "hospital": (0.9, 0.45, 0.75),
    "tow_depot": (0.55, 0.34, 0.29),
}
_RESIDENTIAL = np.array([226, 196, 160], dtype=np.float64)
_COMMERCIAL = np.array([132, 155, 186], dtype=np.float64)


def _pyvista():
    """pyvista, set up to render offscreen (EGL when there is no display)."""
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    import pyvista as pv

    pv.OFF_SCREEN = True
    return pv


def _hash01(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A deterministic pseudo-random number in [0, 1) per position (no generator, no state)."""
    v = np.sin(x * 12.9898e-2 + y * 78.233e-2) * 43758.5453
    return v - np.floor(v)


def _box_mesh(pv, cx, cy, hx, hy, z0, z1, rgb: np.ndarray):
    """One PolyData of axis-aligned boxes (5 faces each, no bottom) with per-face RGB."""
    n = cx.size
    xs = np.stack([cx - hx, cx + hx, cx + hx, cx - hx], -1)
    ys = np.stack([cy - hy, cy - hy, cy + hy, cy + hy], -1)
    pts = np.empty((n, 8, 3), dtype=np.float32)
    pts[:, :4, 0] = xs
    pts[:, :4, 1] = ys
    pts[:, :4, 2] = z0[:, None]
    pts[:, 4:, 0] = xs
    pts[:, 4:, 1] = ys
    pts[:, 4:, 2] = z1[:, None]
    quads = np.array([[4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]], dtype=np.int64)
    idx = quads[None, :, :] + 8 * np.arange(n, dtype=np.int64)[:, None, None]
    faces = np.concatenate([np.full((n, 5, 1), 4, dtype=np.int64), idx], -1).ravel()
    mesh = pv.PolyData(pts.reshape(-1, 3), faces)
    mesh.cell_data["rgb"] = np.repeat(rgb.astype(np.uint8), 5, axis=0)
    return mesh


def city_blocks(ds, pv=None):
    """Building boxes between the roads, from zones (see the module docstring), or ``None``."""
    from scipy.spatial import cKDTree

    pv = pv or _pyvista()
    x0, y0 = ds["link_x0"].values.astype(float), ds["link_y0"].values.astype(float)
    x1, y1 = ds["link_x1"].values.astype(float), ds["link_y1"].values.astype(float)
    L = np.hypot(x1 - x0, y1 - y0)
    if L.size == 0:
        return None
    cell = float(np.clip(np.median(L[L > 0]) / 3.0 if (L > 0).any() else 50.0, 20.0, 120.0))
    # points along every link, every quarter lot
    k = np.maximum(np.ceil(L / (cell / 4)).astype(int), 1)
    seg = np.repeat(np.arange(L.size), k + 1)
    f = np.concatenate([np.linspace(0.0, 1.0, m + 1) for m in k])
    road = np.stack([x0[seg] + f * (x1[seg] - x0[seg]), y0[seg] + f * (y1[seg] - y0[seg])], -1)
    xmin, ymin = road.min(0)
    xmax, ymax = road.max(0)
    gx = np.arange(xmin + cell / 2, xmax, cell)
    gy = np.arange(ymin + cell / 2, ymax, cell)
    if gx.size == 0 or gy.size == 0:
        return None
    cx, cy = (a.ravel() for a in np.meshgrid(gx, gy))
    foot = 0.5 * cell
    dist, _ = cKDTree(road).query(np.stack([cx, cy], -1))
    keep = (dist > foot / 2 + 0.08 * cell + 2.0) & (dist < 1.6 * cell)
    cx, cy = cx[keep], cy[keep]
    if cx.size == 0:
        return None
    # zone of the nearest node -> height and land use
    h = np.full(cx.size, 6.0)
    share = np.full(cx.size, 0.3)
    if "node_x" in ds and "zone" in ds.dims and "node_zone" in ds:
        nodes = np.stack([ds["node_x"].values, ds["node_y"].values], -1).astype(float)
        _, near = cKDTree(nodes).query(np.stack([cx, cy], -1))
        zone = np.asarray(ds["node_zone"].values, dtype=np.int64)[near]
        jobs = np.asarray(ds["zone_jobs"].values, dtype=float) if "zone_jobs" in ds else np.zeros(ds.sizes["zone"])
        res = (
            np.asarray(ds["zone_residents"].values, dtype=float)
            if "zone_residents" in ds
            else np.zeros(ds.sizes["zone"])
        )
        intensity = jobs + 0.35 * res
        top = intensity.max() if intensity.size and intensity.max() > 0 else 1.0
        zh = 5.0 + 0.7 * cell * (intensity / top) ** 0.8
        zs = np.where(jobs + res > 0, jobs / np.maximum(jobs + res, 1.0), 0.3)
        ok = (zone >= 0) & (zone < zh.size)
        h[ok] = zh[zone[ok]]
        share[ok] = zs[zone[ok]]
    r = _hash01(cx, cy)
    h = h * (0.55 + 0.9 * r)
    rgb = _RESIDENTIAL[None, :] * (1 - share[:, None]) + _COMMERCIAL[None, :] * share[:, None]
    rgb = np.clip(rgb * (0.85 + 0.2 * r[:, None]), 0, 255)
    half = np.full(cx.size, foot / 2)
    return _box_mesh(pv, cx, cy, half, half, np.zeros(cx.size), h, rgb)


def _link_values(res: Results, color: str) -> tuple[np.ndarray, tuple[float, float], str, str]:
    """(values[time, link], colour limits, bar title, colormap) for the roads."""
    ds = res.ds
    if color == "speed":
        v = np.asarray(ds["link_speed"].transpose("time", "link").values, dtype=np.float64) * 3.6
        top = float(np.nanmax(ds["link_free_speed"].values) * 3.6) if "link_free_speed" in ds else float(np.nanmax(v))
        return v, (0.0, max(top, 1.0)), "speed (km/h)", "RdYlGn"
    if color == "density":
        if "link_vehicles" not in ds:
            raise InputError(
                f"{res.path / 'results.nc'}: --color density needs the variable 'link_vehicles', which is missing"
            )
        veh = np.asarray(ds["link_vehicles"].transpose("time", "link").values, dtype=np.float64)
        lanes = np.asarray(ds["link_lanes"].values, dtype=np.float64) if "link_lanes" in ds else np.ones(veh.shape[1])
        km = np.asarray(ds["link_length_m"].values, dtype=np.float64) / 1000.0
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(km * lanes > 0, veh / (km * np.maximum(lanes, 1.0)), np.nan)
        finite = v[np.isfinite(v)]
        top = float(np.percentile(finite, 99.5)) if finite.size else 1.0
        return v, (0.0, max(top, 5.0)), "density (veh/km/lane)", "YlOrRd"
    raise InputError(f"--color {color!r}: unknown; choose one of {', '.join(COLOR_BY)}")


@dataclass
class Scene:
    """A built 3D scene: the plotter and what changes from one output interval to the next."""

    res: Results
    plotter: pyvista.Plotter
    roads: pyvista.PolyData
    road_link: np.ndarray
    values: np.ndarray
    color: str
    glyph_size: float
    title: str
    timings: dict[str, float] = field(default_factory=dict)

    def set_time(self, index: int) -> None:
        """Colour the roads and place incidents for output interval ``index``."""
        pv = _pyvista()
        vals = self.values[index][self.road_link].astype(np.float32)
        self.roads.cell_data["value"] = vals
        self.roads.Modified()
        res = self.res
        labels = res.clock_labels()
        start = labels[index - 1] if index > 0 else clock_label(res.start_clock_s)
        text = f"{self.title}\n{start}-{labels[index]}  ·  roads: {self.color}"
        self.plotter.add_text(text, position="upper_left", font_size=10, color="black", name="clock", render=False)
        self.plotter.remove_actor("incidents", render=False)  # type: ignore[arg-type]  # pyvista types the wrapper's first argument as the plotter
        inc = incidents_at(res, float(res.times[index]))
        if inc is not None and inc.active.any():
            a = inc.active
            g = self.glyph_size
            pts = pv.PolyData(np.stack([inc.x[a], inc.y[a], np.full(int(a.sum()), 1.6 * g)], -1).astype(np.float32))
            cone = pv.Cone(center=(0, 0, 0), direction=(0, 0, -1), height=3.2 * g, radius=1.1 * g, resolution=16)
            self.plotter.add_mesh(
                pts.glyph(geom=cone, orient=False, scale=False), color=(1.0, 0.5, 0.05), name="incidents", render=False
            )

    def screenshot(self) -> np.ndarray:
        """Render the scene as it now is and return the image, an (height, width, 3) uint8 array."""
        if not self.plotter._first_time:  # pyvista renders by itself only the first time
            self.plotter.render()
        img = self.plotter.screenshot(return_img=True)
        assert img is not None  # None only without return_img
        return img

    def close(self) -> None:
        """Close the off-screen plotter (its render window and memory)."""
        self.plotter.close()


def _road_tubes(pv: Any, ds: Any) -> tuple[tuple[np.ndarray, ...], np.ndarray, Any, np.ndarray, float]:
    """The roads as tubes.

    Returns the offset link ends ``(x0, y0, x1, y1)``, their points (two rows a link), the
    tube mesh, the link of each of its cells, and the tube radius.
    """
    L = np.asarray(ds["link_length_m"].values, dtype=np.float64)
    ext = max(
        float(np.ptp(np.concatenate([ds["link_x0"].values, ds["link_x1"].values]))),
        float(np.ptp(np.concatenate([ds["link_y0"].values, ds["link_y1"].values]))),
        1.0,
    )
    # tubes thick enough to see at city scale; the two directions of a road side by side
    offset = float(np.clip(0.05 * np.median(L) if L.size else 5.0, 2.0, 15.0))
    radius = max(0.8 * offset, 0.0022 * ext)
    offset = max(offset, 1.2 * radius)
    x0, y0, x1, y1 = link_offsets(ds, offset)
    n = x0.size
    pts = np.empty((2 * n, 3), dtype=np.float32)
    pts[0::2, 0], pts[0::2, 1] = x0, y0
    pts[1::2, 0], pts[1::2, 1] = x1, y1
    pts[:, 2] = radius
    lines = np.stack([np.full(n, 2), np.arange(0, 2 * n, 2), np.arange(1, 2 * n, 2)], -1).ravel()
    lines_mesh = pv.PolyData(pts, lines=lines)
    lines_mesh.cell_data["link"] = np.arange(n, dtype=np.int64)
    roads = lines_mesh.tube(radius=radius, n_sides=8, capping=True)
    road_link = np.asarray(roads.cell_data["link"], dtype=np.int64)
    roads.cell_data["value"] = np.zeros(roads.n_cells, dtype=np.float32)
    return (x0, y0, x1, y1), pts, roads, road_link, radius


def _add_sites(p: Any, pv: Any, res: Results, glyph: float) -> list:
    """Stations and hospitals as coloured pins (grey when out of service); returns their legend entries."""
    legend: list = []
    st = sites(res)
    if st is not None:
        top = 4.0 * glyph
        for k in sorted(set(st.kind)):
            for serv in (True, False):
                sel = (st.kind == k) & (st.in_service == serv)
                if not sel.any():
                    continue
                rgb = _FACILITY_RGB.get(k, (0.5, 0.5, 0.5)) if serv else (0.55, 0.55, 0.55)
                n = int(sel.sum())
                poles = pv.PolyData(np.stack([st.x[sel], st.y[sel], np.full(n, top / 2)], -1).astype(np.float32))
                p.add_mesh(
                    poles.glyph(
                        geom=pv.Cylinder(direction=(0, 0, 1), radius=0.12 * glyph, height=top),
                        orient=False,
                        scale=False,
                    ),
                    color=(0.3, 0.3, 0.3),
                    name=f"pole-{k}-{serv}",
                )
                heads = pv.PolyData(np.stack([st.x[sel], st.y[sel], np.full(n, top)], -1).astype(np.float32))
                p.add_mesh(
                    heads.glyph(geom=pv.Sphere(radius=0.8 * glyph), orient=False, scale=False),
                    color=rgb,
                    name=f"site-{k}-{serv}",
                )
                legend.append([k.replace("_", " ") + ("" if serv else " (out of service at the end)"), rgb])
    return legend


def _place_camera(p: Any, cx: float, cy: float, span: float) -> None:
    """Look at the city's centre from the south, above, with the whole city in view."""
    focal = np.array([cx, cy, 0.0])
    direction = np.array([-0.35, -1.0, 0.95])
    direction /= np.linalg.norm(direction)
    p.camera_position = [tuple(focal + 2.1 * span * direction), tuple(focal), (0.0, 0.0, 1.0)]
    p.camera.view_angle = 30.0
    p.reset_camera_clipping_range()


def build_scene(res: Results, *, color: str = "speed", size: tuple[int, int] = (1280, 800), index: int = 0) -> Scene:
    """Build the 3D scene of a run (see the module docstring), showing output interval ``index``."""
    if res.kind != "run":
        raise InputError(f"{res.path}: 3D scenes are drawn from a run folder (results.nc); this is a comparison folder")
    t0 = time.perf_counter()
    pv = _pyvista()
    ds = res.ds
    values, clim, bar_title, cmap = _link_values(res, color)
    (x0, y0, x1, y1), pts, roads, road_link, radius = _road_tubes(pv, ds)
    t_geom = time.perf_counter()

    p = pv.Plotter(off_screen=True, window_size=list(size))
    p.set_background("white", top=(0.78, 0.85, 0.93))
    xs, ys = np.concatenate([x0, x1]), np.concatenate([y0, y1])
    span = float(max(np.ptp(xs), np.ptp(ys), 1.0))
    cx, cy = float(xs.mean()), float(ys.mean())
    ground = pv.Plane(
        center=((xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2, -0.5),
        i_size=np.ptp(xs) + 0.12 * span,
        j_size=np.ptp(ys) + 0.12 * span,
    )
    p.add_mesh(ground, color=(0.80, 0.83, 0.80), name="ground")
    blocks = city_blocks(ds, pv)
    if blocks is not None:
        p.add_mesh(blocks, scalars="rgb", rgb=True, name="blocks", smooth_shading=False)
    mask = intervened_mask(res)
    if mask.any():
        sel = np.flatnonzero(mask)
        sub = pv.PolyData(
            np.stack([pts[0::2][sel], pts[1::2][sel]], 1).reshape(-1, 3),
            lines=np.stack(
                [np.full(sel.size, 2), np.arange(0, 2 * sel.size, 2), np.arange(1, 2 * sel.size, 2)], -1
            ).ravel(),
        )
        p.add_mesh(sub.tube(radius=1.9 * radius, n_sides=8), color=(1.0, 0.0, 1.0), name="intervened", opacity=1.0)
    p.add_mesh(
        roads,
        scalars="value",
        cmap=cmap,
        clim=clim,
        name="roads",
        show_scalar_bar=True,
        scalar_bar_args={
            "title": bar_title + "\n",
            "vertical": True,
            "n_labels": 5,
            "fmt": "%.0f",
            "color": "black",
            "position_x": 0.06,
            "position_y": 0.06,
            "width": 0.06,
            "height": 0.4,
            "title_font_size": 14,
            "label_font_size": 12,
        },
    )
    glyph = 0.012 * span
    legend = _add_sites(p, pv, res, glyph)
    if "incident" in ds.dims:
        legend.append(["incident", (1.0, 0.5, 0.05)])
    if mask.any():
        legend.append(["intervened link", (1.0, 0.0, 1.0)])
    if legend and size[0] >= 480:
        p.add_legend(
            legend,
            bcolor="white",
            background_opacity=0.8,
            border=False,
            size=(0.16, 0.035 * len(legend) + 0.02),
            loc="upper right",
            face="circle",
        )
    _place_camera(p, cx, cy, span)
    try:
        p.enable_anti_aliasing("msaa", multi_samples=4)
    except Exception:  # older VTK / drivers: render without
        log.debug("anti-aliasing unavailable", exc_info=True)
    title = f"{res.name} · {ds.attrs.get('city', '')}".strip(" ·")
    scene = Scene(
        res=res, plotter=p, roads=roads, road_link=road_link, values=values, color=color, glyph_size=glyph, title=title
    )
    scene.set_time(index)
    scene.timings = {"geometry_s": t_geom - t0, "scene_s": time.perf_counter() - t0}
    return scene


def _frame_indices(n_times: int, frames: int | None) -> np.ndarray:
    if frames is None or frames >= n_times:
        return np.arange(n_times)
    return np.unique(np.linspace(0, n_times - 1, max(frames, 2)).round().astype(int))


def _write_animation(scene: Scene, path: Path, *, frames: int | None, fps: float) -> int:
    import imageio.v2 as imageio

    idx = _frame_indices(scene.res.times.size, frames)
    scene.plotter.disable_anti_aliasing()  # half the time a frame; motion hides the jaggies
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".gif":
            writer = imageio.get_writer(tmp, format="GIF", mode="I", duration=1000.0 / fps, loop=0)
        else:
            writer = imageio.get_writer(
                tmp,
                format="FFMPEG",
                mode="I",
                fps=fps,
                codec="libx264",
                quality=7,
                macro_block_size=2,
                pixelformat="yuv420p",
            )
        with writer:
            for i in idx:
                scene.set_time(int(i))
                writer.append_data(scene.screenshot())
    return int(idx.size)


def _export_html(scene: Scene, path: Path) -> bool:
    """Interactive HTML of the scene (vtk.js, offline), when trame-vtk's viewer is installed."""
    from viz.webscene import export_html

    return export_html(scene.plotter, path)


def _check_out(path: Path, suffixes: tuple[str, ...], what: str) -> Path:
    if path.is_dir():
        raise InputError(f"{what} {str(path)!r} is a folder; give a file name ending in {' or '.join(suffixes)}")
    if path.suffix.lower() not in suffixes:
        raise InputError(f"{what} {str(path)!r}: give a file name ending in {' or '.join(suffixes)}")
    return path


def render(
    path: str | Path,
    *,
    out: str | Path,
    when: str | float | None = None,
    color: str = "speed",
    size: tuple[int, int] = (1280, 800),
    animate: str | Path | None = None,
    frames: int | None = None,
    fps: float = 8.0,
    html: str | Path | None = None,
) -> dict[str, float]:
    """Render a run's city in 3D to a PNG, and optionally animate the day and export HTML.

    Parameters
    ----------
    path
        A run folder.
    out
        The PNG to write.
    when
        Clock time ``"HH:MM"`` or seconds since the start (default: the
        busiest interval).
    color
        ``"speed"`` or ``"density"``.
    size
        Image (width, height) in pixels.
    animate
        A ``.gif`` or ``.mp4`` to render the day into, one frame per output
        interval (or ``frames`` evenly spaced ones).
    fps
        Animation frames per second.
    html
        An interactive HTML scene to export (skipped, with a warning, when the
        offline viewer is not installed).

    Returns
    -------
    dict
        Timings in seconds (``load_s``, ``scene_s``, ``png_s``, ``animation_s``,
        ``frames``, ``html_s``) and ``html_written`` (1.0 or 0.0).
    """
    if color not in COLOR_BY:
        raise InputError(f"--color {color!r}: unknown; choose one of {', '.join(COLOR_BY)}")
    w, h = (int(v) for v in size)
    if w < 64 or h < 64 or w > 8192 or h > 8192:
        raise InputError(f"--size {w}x{h}: width and height must be between 64 and 8192 pixels")
    out = _check_out(Path(out), (".png",), "--out")
    anim = _check_out(Path(animate), (".gif", ".mp4"), "--animate") if animate is not None else None
    html_path = _check_out(Path(html), (".html", ".htm"), "--html") if html is not None else None
    if frames is not None and frames < 1:
        raise InputError(f"--frames {frames}: must be at least 1")
    if not fps > 0:
        raise InputError(f"--fps {fps}: must be positive")
    t0 = time.perf_counter()
    res = open_results(path)
    index = time_index(res, when)
    timings = {"load_s": time.perf_counter() - t0}
    scene = build_scene(res, color=color, size=(w, h), index=index)
    try:
        timings.update(scene.timings)
        t1 = time.perf_counter()
        img = scene.screenshot()
        import imageio.v2 as imageio

        for p in (out, anim, html_path):
            if p is not None:
                p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            imageio.imwrite(tmp, img, format="PNG")
        timings["png_s"] = time.perf_counter() - t1
        if html_path is not None:
            t2 = time.perf_counter()
            timings["html_written"] = 1.0 if _export_html(scene, html_path) else 0.0
            timings["html_s"] = time.perf_counter() - t2
        if anim is not None:
            t3 = time.perf_counter()
            timings["frames"] = float(_write_animation(scene, anim, frames=frames, fps=fps))
            timings["animation_s"] = time.perf_counter() - t3
    finally:
        scene.close()
    return timings
