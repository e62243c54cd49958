"""``twin render``: the 3D scene (pyvista offscreen), its animation and interactive export."""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile

import imageio.v2 as imageio
import numpy as np
import pytest
import xarray as xr

from basics.errors import InputError
from tests.viz.conftest import INTERVENED
from twin.cli import main
from viz.data import open_results
from viz.scene import city_blocks, render

SIZE = (320, 240)


def _img(path):
    return np.asarray(imageio.imread(path))[..., :3].astype(int)


def _assert_picture(img, size=SIZE):
    assert img.shape == (size[1], size[0], 3)
    assert img.std() > 20  # not blank
    packed = (img[..., 0] << 16) | (img[..., 1] << 8) | img[..., 2]
    assert np.unique(packed).size > 200


def _magenta(img):
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return int(((r > 150) & (b > 150) & (g < 90)).sum())


@pytest.fixture(scope="module")
def scene_png(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("scene") / "scene.png"
    timings = render(run_dir, out=out, when="07:20", size=SIZE)
    return out, timings


def test_render_writes_a_real_image(scene_png):
    out, timings = scene_png
    _assert_picture(_img(out))
    assert timings["scene_s"] > 0 and timings["png_s"] > 0
    assert not list(out.parent.glob(".*"))  # no temporary file left


def test_roads_follow_the_time_and_the_colouring(run_dir, scene_png, tmp_path):
    out, _ = scene_png
    render(run_dir, out=tmp_path / "early.png", when="07:05", size=SIZE)
    render(run_dir, out=tmp_path / "density.png", when="07:20", color="density", size=SIZE)
    later, early, density = _img(out), _img(tmp_path / "early.png"), _img(tmp_path / "density.png")
    assert np.abs(later - early).sum(-1).astype(bool).sum() > 50
    assert np.abs(later - density).sum(-1).astype(bool).sum() > 200


def test_intervened_links_and_incidents_are_drawn(run_dir, run_extras_dir, scene_png, tmp_path):
    plain, _ = scene_png
    out = tmp_path / "extras.png"
    render(run_extras_dir, out=out, when="07:20", size=(640, 480))
    render(run_dir, out=tmp_path / "plain.png", when="07:20", size=(640, 480))
    extras, base = _img(out), _img(tmp_path / "plain.png")
    assert _magenta(extras) > 20 and _magenta(base) == 0
    r, g, b = extras[..., 0], extras[..., 1], extras[..., 2]
    orange = (r > 200) & (g > 70) & (g < 170) & (b < 60)
    r0, g0, b0 = base[..., 0], base[..., 1], base[..., 2]
    orange0 = (r0 > 200) & (g0 > 70) & (g0 < 170) & (b0 < 60)
    assert orange.sum() > orange0.sum() + 30  # the incident cones


def test_blocks_stand_clear_of_roads_and_rise_with_jobs(run_dir):
    ds = open_results(run_dir).ds
    mesh = city_blocks(ds)
    assert mesh is not None and mesh.n_cells % 5 == 0 and mesh.n_cells >= 5 * 50
    pts = np.asarray(mesh.points).reshape(-1, 8, 3)
    centre = pts[:, :4, :2].mean(1)
    height = pts[:, 4, 2]
    # no building centre sits on a road: farther than its half-footprint from every link end and midpoint
    half = np.abs(pts[:, 0, :2] - centre).max(1)
    ends = np.concatenate(
        [
            np.stack([ds.link_x0, ds.link_y0], -1),
            np.stack([ds.link_x1, ds.link_y1], -1),
            np.stack([(ds.link_x0 + ds.link_x1) / 2, (ds.link_y0 + ds.link_y1) / 2], -1),
        ]
    )
    d = np.hypot(*(centre[:, None, :] - ends[None, :, :]).transpose(2, 0, 1)).min(1)
    assert (d > half).all()
    # the zone with the most jobs has the tallest blocks on average
    node_xy = np.stack([ds.node_x.values, ds.node_y.values], -1)
    zone = ds.node_zone.values[np.argmin(np.hypot(*(centre[:, None, :] - node_xy[None]).transpose(2, 0, 1)), axis=1)]
    top = int(np.argmax(ds.zone_jobs.values))
    others = [height[zone == z].mean() for z in np.unique(zone) if z != top]
    assert height[zone == top].mean() > max(others)


def test_animation_gif_and_mp4(run_dir, tmp_path):
    gif = tmp_path / "day.gif"
    timings = render(run_dir, out=tmp_path / "s.png", size=SIZE, animate=gif, frames=3)
    assert timings["frames"] == 3
    frames = imageio.mimread(gif)
    assert len(frames) == 3 and frames[0].shape[:2] == (SIZE[1], SIZE[0])
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).sum() > 0  # the day moves
    mp4 = tmp_path / "day.mp4"
    render(run_dir, out=tmp_path / "s2.png", size=SIZE, animate=mp4, frames=3)
    reader = imageio.get_reader(mp4, format="FFMPEG")
    try:
        got = [f for f in reader]
    finally:
        reader.close()
    assert len(got) == 3 and got[0].shape[:2] == (SIZE[1], SIZE[0]) and got[0].std() > 20


def test_cli_render_with_interactive_html(run_dir, tmp_path, capsys):
    pytest.importorskip("trame_vtk")
    out, html = tmp_path / "c.png", tmp_path / "c.html"
    assert (
        main(["render", str(run_dir), "--out", str(out), "--size", "320x240", "--time", "900", "--html", str(html)])
        == 0
    )
    assert "c.png" in capsys.readouterr().out
    _assert_picture(_img(out))
    text = html.read_text()
    assert not re.search(r"""<script[^>]+src\s*=|<link[^>]+href\s*=\s*['"]https?:""", text)
    b64 = re.search(r'const base64Str = "([A-Za-z0-9+/=]+)"', text).group(1)
    state = json.loads(zipfile.ZipFile(io.BytesIO(base64.b64decode(b64))).read("index.json"))
    actors = re.findall(r'"type": "vtkOpenGLActor"', json.dumps(state["scene"]))
    assert len(actors) >= 4  # ground, blocks, roads, facility glyphs
    assert len(state["hashes"]) >= 4 and all(h["content"] for h in state["hashes"].values())


def test_bad_render_input_is_a_clear_error(run_dir, comparison_dir, tmp_path, capsys):
    png = tmp_path / "x.png"
    with pytest.raises(InputError, match="08:30"):
        render(run_dir, out=png, when="08:30", size=SIZE)
    with pytest.raises(InputError, match="colour|color"):
        render(run_dir, out=png, color="noise", size=SIZE)
    with pytest.raises(InputError, match="comparison"):
        render(comparison_dir, out=png, size=SIZE)
    with pytest.raises(InputError, match=r"\.gif or \.mp4"):
        render(run_dir, out=png, animate=tmp_path / "a.avi", size=SIZE)
    with pytest.raises(InputError, match=r"\.png"):
        render(run_dir, out=tmp_path / "x.jpg", size=SIZE)
    thin = tmp_path / "thin"
    thin.mkdir()
    with xr.open_dataset(run_dir / "results.nc", engine="h5netcdf") as ds:
        ds.load().drop_vars("link_vehicles").to_netcdf(thin / "results.nc", engine="h5netcdf")
    with pytest.raises(InputError, match="link_vehicles"):
        render(thin, out=png, color="density", size=SIZE)
    assert not png.exists()
    assert main(["render", str(run_dir), "--out", str(png), "--time", "lunchtime"]) == 2
    err = capsys.readouterr().err
    assert "lunchtime" in err and "Traceback" not in err
    assert main(["render", str(run_dir), "--out", str(png), "--size", "big"]) == 2
    assert INTERVENED  # the extras fixture marks links; the plain run has none
