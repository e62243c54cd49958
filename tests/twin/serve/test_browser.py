"""``twin serve`` in a real browser (Debian's chromium driven by Playwright).

Skipped where chromium or Playwright is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import shutil
import socket
import threading
import time

import numpy as np
import pytest

from basics.clock import format_clock
from tests.twin.serve.conftest import OPERATOR, VIEWER

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def served(twin, token_file):
    import uvicorn

    from twin.serve import Runner, Tokens, build_app

    runner = Runner(twin, speed=120.0)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(runner, Tokens.from_file(token_file)),
            host="127.0.0.1",
            port=port,
            log_level="error",
            ws="wsproto",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    runner.start()
    yield runner, f"http://127.0.0.1:{port}/"
    runner.stop()
    server.should_exit = True
    thread.join(10)


def _wait(page, expr: str, timeout: float = 20.0) -> None:
    """Poll ``expr`` in the page until true (wait_for_function evaluates strings in the
    page, which the page's Content-Security-Policy rightly forbids)."""
    deadline = time.time() + timeout
    while not page.evaluate(expr):
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {expr}")
        page.wait_for_timeout(100)


def _page(browser, url, errors):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    _wait(page, "Number(document.body.dataset.seq || 0) > 0")
    return page


def _screen(page, box, x_expr: str, y_expr: str) -> tuple[float, float]:
    """Page coordinates of a map point (world metres, as JavaScript expressions)."""
    sx, sy = page.evaluate(f"toScreen({x_expr}, {y_expr})")
    dpr = page.evaluate("devicePixelRatio")
    return box["x"] + sx / dpr, box["y"] + sy / dpr


def _routed(twin) -> np.ndarray:
    """Per link: whether it lies on some destination's shortest route (the potentials say so)."""
    r = twin.traffic.routes
    pot, w = r.pot.copy(), r.weight.copy()
    net = twin.city.network
    pa, pb = pot[:, net.src], pot[:, net.dst]
    with np.errstate(invalid="ignore"):
        on = np.isfinite(pa) & np.isfinite(pb) & np.isclose(pa, w[None, :] + pb, rtol=1e-9)
    return on.any(axis=0) & np.isfinite(w)


def _busy_link(twin, page) -> int:
    """A link vehicles enter, on some route, that a click at its middle picks (read from the running twin)."""
    n0 = twin.traffic.state.n_in.copy()
    time.sleep(1.0)
    d = twin.traffic.state.n_in - n0
    on = _routed(twin)
    net = twin.city.network
    for link in np.argsort(-d, kind="stable").tolist():
        mx = (net.x[net.src[link]] + net.x[net.dst[link]]) / 2
        my = (net.y[net.src[link]] + net.y[net.dst[link]]) / 2
        if on[link] and page.evaluate(f"nearestLink({mx}, {my})") == link:
            return link
    raise AssertionError("no busy link on a route")


def test_dashboard_in_chromium(served, twin, tmp_path):
    runner, url = served
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = _page(browser, f"{url}?token={OPERATOR}", errors)
            # the map draws every link, and is not blank
            assert page.eval_on_selector("#map", "c => c.dataset.links") == str(twin.city.network.n_links)
            colours = page.evaluate(
                """() => { const c = document.getElementById('map'); const d = c.getContext('2d')
                     .getImageData(0, 0, c.width, c.height).data; const seen = new Set();
                     for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i] << 16 | d[i+1] << 8 | d[i+2]);
                     return seen.size; }"""
            )
            assert colours > 3
            # the page's clock text follows basics.clock.format_clock (rounded to the second, then the begun minute)
            times = [28799.6, 28799.5, 28800.5, 28779.9, 28740.0, -0.4, 86399.6, 90000.0, 2.5, 3.5]
            assert page.evaluate(f"{times}.map(formatClock)") == [format_clock(t) for t in times]
            # the KPI panel's labels and units are the run folders' (twin.results), sent with the map
            _wait(page, "document.getElementById('kpis').textContent.includes('Mean network speed')")
            assert "km/h" in page.text_content("#kpis")
            # sim time advances
            t0 = float(page.evaluate("document.body.dataset.t"))
            _wait(page, f"Number(document.body.dataset.t) > {t0}")
            # an incident injected through the UI: in the log and on the map
            n_before = len(twin.components["emergency"].incidents)
            page.select_option("#inctype", "fire")
            page.click("#incmode")
            box = page.locator("#map").bounding_box()
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            _wait(page, "document.getElementById('msg').textContent.startsWith('incident')")
            page.wait_for_selector("#log td:has-text('duty-officer: incident')")
            new_id = n_before  # ids count from 0
            _wait(page, f"document.getElementById('log').textContent.includes('{new_id} fire')")
            # ...and on the map, drawn (the canvas counts the incidents it drew)
            _wait(page, f"state.incidents['{new_id}'] !== undefined && state.incidents['{new_id}'].type === 'fire'")
            _wait(page, "Number(document.getElementById('map').dataset.incidents) >= 1")
            # hovering it shows its details
            ix, iy = _screen(page, box, f"state.incidents['{new_id}'].x", f"state.incidents['{new_id}'].y")
            page.mouse.move(box["x"] + 3, box["y"] + 3)  # away first: a move to where the mouse is fires nothing
            page.mouse.move(ix, iy, steps=3)
            _wait(page, "document.getElementById('tip').textContent.startsWith('incident #')")
            # a road closed through the UI (a busy one) is drawn closed and traffic reroutes
            link = _busy_link(twin, page)
            net = twin.city.network
            mx, my = (
                (net.x[net.src[link]] + net.x[net.dst[link]]) / 2,
                (net.y[net.src[link]] + net.y[net.dst[link]]) / 2,
            )
            page.click("#closemode")
            cx, cy = _screen(page, box, str(mx), str(my))
            page.mouse.click(cx, cy)
            _wait(page, "document.getElementById('msg').textContent.startsWith('closed link')")
            assert list(runner.closures) == [link] and twin.traffic.links.is_open[link] == 0
            closed = link
            n_in = int(twin.traffic.state.n_in[closed])
            _wait(page, f"state.levels[{closed}] === -1 && Number(document.getElementById('map').dataset.closed) >= 1")
            t_closed = twin.now
            _wait(page, f"Number(document.body.dataset.t) > {t_closed + 300}")
            assert int(twin.traffic.state.n_in[closed]) == n_in  # nobody enters it any more...
            assert not _routed(twin)[closed]  # ...and it left every route it was on
            # hovering the closed road says so
            hx, hy = _screen(page, box, str(mx), str(my))
            page.mouse.move(box["x"] + 3, box["y"] + 3)
            page.mouse.move(hx + 1, hy, steps=3)
            _wait(page, "document.getElementById('tip').textContent.includes('CLOSED')")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(tmp_path / "operator.png"))
            # the time slider replays a recorded interval
            page.evaluate(
                "const r = document.getElementById('replay'); r.value = '0'; r.dispatchEvent(new Event('input'))"
            )
            _wait(page, "document.body.dataset.replay === '0'")
            assert page.text_content("#replaylabel").startswith("08:10")
            assert not errors, errors
            # a viewer watches but its controls are refused
            viewer = _page(browser, f"{url}?token={VIEWER}", errors)
            assert viewer.evaluate("document.body.dataset.role") == "viewer"
            viewer.click("#pause")
            _wait(viewer, "document.getElementById('msg').textContent.includes('403')")
            assert not runner.paused
        finally:
            browser.close()
    assert not [e for e in errors if "403" not in e], errors
