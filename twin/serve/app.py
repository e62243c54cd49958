"""The web application of ``twin serve`` (Starlette; served by uvicorn).

Routes:

- ``GET /`` the dashboard page, ``GET /static/...`` its script and style (from ``viz/web``);
- ``GET /api/map`` the static map, ``GET /api/state`` the state now (JSON),
  ``GET /api/replay?i=K`` recorded output interval K (the time slider),
  ``GET /api/link?i=K`` link K's details (hover and click);
- ``POST /api/control`` one operator control (JSON, at most
  :data:`~twin.serve.controls.MAX_BODY_BYTES`), answered when the twin has applied it;
- ``WS /ws`` the full state on connect, then a delta per publication (a reconnecting
  browser gets the full state again, so it catches up).

Starlette is the stack the HTTP feed endpoint already uses (:mod:`twin.feeds.http`):
its WebSocket and test client are all this needs, with no new dependency.

Security: a token (``Authorization: Bearer``, or ``?token=`` where a browser cannot
set headers: the page and its WebSocket) is required whenever a token file is
given; a viewer's control gets 403.  Without tokens the app accepts only
loopback ``Host`` names (no DNS rebinding).  Controls must be sent as
``application/json`` (a cross-site form cannot send that without a preflight the
app never grants), and a WebSocket's ``Origin``, when sent, must be the page's own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from twin.serve.auth import Identity, Tokens
from twin.serve.controls import MAX_BODY_BYTES, ControlError, check_control
from twin.serve.geometry import link_details
from twin.serve.picture import map_payload, replay_payload
from twin.serve.runner import Runner

__all__ = ["build_app", "web_folder", "SECURITY_HEADERS"]

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1", "testserver"}
#: seconds a control may wait for the twin
CONTROL_TIMEOUT_S = 30.0


def web_folder() -> Path:
    """Where the page's files are (``viz/web``, shipped as package data)."""
    import viz

    return Path(viz.__file__).parent / "web"


def _token(request: Request | WebSocket) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.query_params.get("token")


def _host_ok(request: Request | WebSocket, tokens: Tokens) -> bool:
    if tokens.required:
        return True
    host = request.headers.get("host", "").rsplit(":", 1)[0] if "]" not in request.headers.get("host", "") else "[::1]"
    return host in _LOOPBACK_HOSTS


def _deny(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": reason}, status_code=status, headers=SECURITY_HEADERS)


def _who(request: Request, tokens: Tokens) -> Identity | JSONResponse:
    if not _host_ok(request, tokens):
        return _deny(403, "without tokens the server answers only to localhost")
    ident = tokens.identify(_token(request))
    if ident is None:
        return _deny(401, "a valid token is needed (Authorization: Bearer TOKEN, or ?token=TOKEN)")
    return ident


async def _read_body(request: Request) -> bytes:
    size = request.headers.get("content-length")
    if size is not None and (not size.isdigit() or int(size) > MAX_BODY_BYTES):
        raise ControlError(413, f"a control body may have at most {MAX_BODY_BYTES:,} bytes")
    chunks, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > MAX_BODY_BYTES:
            raise ControlError(413, f"a control body may have at most {MAX_BODY_BYTES:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(runner: Runner, tokens: Tokens | None = None) -> Starlette:
    """The Starlette app over a :class:`~twin.serve.runner.Runner`.

    Parameters
    ----------
    runner
        Runs the twin (started or not: controls then apply at once).
    tokens
        Who may watch and act; ``None``: no tokens (loopback only).
    """
    tokens = tokens or Tokens()
    web = web_folder()
    net = runner.twin.city.network
    n_links, n_nodes = int(net.n_links), int(net.n_nodes)
    map_json = json.dumps(map_payload(runner.twin), separators=(",", ":")).encode()

    async def page(request: Request) -> Response:
        who = _who(request, tokens)
        if isinstance(who, Response):
            return who
        return FileResponse(web / "index.html", headers=SECURITY_HEADERS)

    async def api_map(request: Request) -> Response:
        who = _who(request, tokens)
        if isinstance(who, Response):
            return who
        return Response(map_json, media_type="application/json", headers=SECURITY_HEADERS)

    async def api_state(request: Request) -> Response:
        who = _who(request, tokens)
        if isinstance(who, Response):
            return who
        state, _ = runner.snapshot()
        body = dict(state, you={"name": who.name, "role": who.role}, server=runner.stats())
        return JSONResponse(body, headers=SECURITY_HEADERS)

    async def api_replay(request: Request) -> Response:
        who = _who(request, tokens)
        if isinstance(who, Response):
            return who
        i = _index(request)
        if i is None:
            return _deny(422, "i must be the number of a recorded interval")
        try:
            return JSONResponse(replay_payload(runner.twin, i), headers=SECURITY_HEADERS)
        except IndexError as exc:
            return _deny(404, str(exc))

    api_link = _link_endpoint(runner, tokens, n_links=n_links)
    api_control = _control_endpoint(runner, tokens, n_links=n_links, n_nodes=n_nodes)

    async def ws(websocket: WebSocket) -> None:
        origin = websocket.headers.get("origin")
        host = websocket.headers.get("host", "")
        ident = tokens.identify(_token(websocket)) if _host_ok(websocket, tokens) else None
        if ident is None or (origin is not None and origin.split("://", 1)[-1] != host):
            await websocket.close(code=1008)
            return
        await websocket.accept()
        await _feed(websocket, runner, ident)

    routes = [
        Route("/", page),
        Route("/api/map", api_map),
        Route("/api/state", api_state),
        Route("/api/replay", api_replay),
        Route("/api/link", api_link),
        Route("/api/control", api_control, methods=["POST"]),
        WebSocketRoute("/ws", ws),
        Mount("/static", StaticFiles(directory=web), name="static"),
    ]
    return Starlette(routes=routes)


def _index(request: Request) -> int | None:
    """The query's ``i`` as a non-negative index, or ``None`` when it is not plain ASCII digits
    (at most 9: ``"²"`` and ``"١"`` are digits to :meth:`str.isdigit`, and ``int`` refuses the first).
    """
    raw = request.query_params.get("i", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else None


def _link_endpoint(runner: Runner, tokens: Tokens, *, n_links: int) -> Any:
    """``GET /api/link?i=K``: link K's details (hover and click)."""

    async def api_link(request: Request) -> Response:
        who = _who(request, tokens)
        if isinstance(who, Response):
            return who
        i = _index(request)
        if i is None or i >= n_links:
            return _deny(422, f"i must be a link index 0-{n_links - 1}")
        return JSONResponse(link_details(runner.twin, i), headers=SECURITY_HEADERS)

    return api_link


def _control_endpoint(runner: Runner, tokens: Tokens, *, n_links: int, n_nodes: int) -> Any:
    """``POST /api/control``: who, role, content type, size, JSON, check, apply."""

    async def api_control(request: Request) -> Response:
        who = _who(request, tokens)
        if isinstance(who, Response):
            return who
        if not who.operator:
            runner.note(who.name, "control", "refused: viewer token")
            return _deny(403, f"{who.name} is a viewer: controls need an operator token")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _deny(415, "send controls as application/json")
        try:
            raw = await _read_body(request)
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError):
                raise ControlError(400, "the body is not JSON") from None
            ctl = check_control(body, n_links=n_links, n_nodes=n_nodes)
            fut = runner.submit(ctl, who.name)
            outcome = await asyncio.wait_for(asyncio.wrap_future(fut), CONTROL_TIMEOUT_S)
        except ControlError as exc:
            return _deny(exc.status, exc.reason)
        except TimeoutError:
            return _deny(504, "the twin did not take the control in time")
        return JSONResponse({"ok": True, "outcome": outcome}, headers=SECURITY_HEADERS)

    return api_control


async def _feed(websocket: WebSocket, runner: Runner, ident: Identity) -> None:
    """Full state, then each delta (or the full state again when one was missed)."""
    closed = asyncio.Event()

    async def reader() -> None:  # the page sends nothing; this notices it leaving
        try:
            while True:
                msg = await websocket.receive()
                if msg["type"] == "websocket.disconnect":
                    break
        except (WebSocketDisconnect, RuntimeError):
            pass
        closed.set()

    task = asyncio.create_task(reader())
    runner.clients += 1
    try:
        state, _ = runner.snapshot()
        await websocket.send_text(_dumps(dict(state, you={"name": ident.name, "role": ident.role})))
        seq = state["seq"]
        while not closed.is_set():
            await asyncio.sleep(0.05)
            state, delta = runner.snapshot()
            if state["seq"] == seq:
                continue
            msg = delta if delta is not None and delta["base"] == seq else state
            await websocket.send_text(_dumps(msg))
            seq = state["seq"]
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        runner.clients -= 1
        task.cancel()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)
