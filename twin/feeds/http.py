"""HTTP endpoint for NGSI-LD notifications, as an Orion-LD subscription POSTs them.

Served by uvicorn (an ASGI server, h11 parsing the requests) with a small Starlette
handler, in a background thread with its own event loop. Bound to ``127.0.0.1`` by
default (local connections only). Requests:

- ``POST {path}`` with ``Content-Type: application/json`` or ``application/ld+json``: a
  Notification (``{"type": "Notification", "data": [entities]}``), an entity or a list
  of entities, in either form. Answers ``200`` with the outcome counts when at least one
  entity was taken (accepted, duplicate or late); ``400`` with the reason when the body
  is malformed or every entity in it was rejected (each is dead-lettered); ``413`` when
  the body is larger than ``max_body_bytes``; ``415`` for another content type; ``411``
  without a ``Content-Length``; ``408`` when the body does not arrive within ``timeout``.
- ``GET /health``: the hub's counters as JSON.

As a service:

- **access**: with a token (the environment variable named by ``token_env``, default
  ``TWIN_FEED_TOKEN``, is set) every request needs ``Authorization: Bearer <token>``
  (``401`` otherwise, compared in constant time). Bound beyond loopback (``0.0.0.0``, a
  LAN address) the endpoint logs a warning and refuses to start without a token: a
  forged ``roadClosed`` alert closes a road. There is no TLS here; put a reverse proxy
  with TLS in front for anything but a trusted network.
- **bounded work**: at most ``max_connections`` connections are served at once (more are
  answered ``503``); a connection must send its request head within ``timeout`` seconds
  (closed otherwise) and its body within ``timeout`` seconds more (``408``); idle
  keep-alive connections close after 5 s; request heads are limited to 64 KiB by h11, and
  malformed heads (``Content-Length: ²``) get ``400`` from the parser without reaching
  the handler. Slow clients hold a coroutine each, not a thread.

Each notification is cleansed into the hub's queue before the answer is sent.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
import socket
import threading
from typing import TYPE_CHECKING, Any

from basics.errors import InputError

if TYPE_CHECKING:
    import uvicorn

__all__ = ["HttpSource", "is_loopback"]

log = logging.getLogger(__name__)

_JSON_TYPES = ("application/json", "application/ld+json")
_KEEPALIVE_S = 5.0
_MAX_HEAD_BYTES = 64 * 1024


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` accepts only connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: resolve it
        try:
            infos = socket.getaddrinfo(host, None)
        except OSError:
            return False
        return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def _protocol_class(head_timeout: float):
    """Uvicorn's h11 protocol with a deadline for each request head."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11Protocol(H11Protocol):
        """Closes a connection that has not sent a whole request head within ``head_timeout``."""

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_timer = self.loop.call_later(head_timeout, self._head_expired)

        def _head_expired(self) -> None:
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._head_timer.cancel()
            self._head_timer = self.loop.call_later(head_timeout + _KEEPALIVE_S, self._head_expired)

        def connection_lost(self, exc) -> None:
            self._head_timer.cancel()
            super().connection_lost(exc)

    return TimedH11Protocol


class HttpSource:
    """An HTTP server pushing POSTed NGSI-LD notifications into a hub.

    Parameters
    ----------
    host : str
        Address to bind (default ``127.0.0.1``).
    port : int
        Port; 0 picks a free one (see :attr:`port` after :meth:`start`).
    path : str
        URL path notifications are POSTed to.
    name : str
        Source name in counters.
    max_body_bytes : int
        Larger bodies are refused with 413.
    token : str or None
        When given, requests need ``Authorization: Bearer <token>``; required when
        ``host`` is not a loopback address.
    max_connections : int
        Connections served at once (more get 503).
    timeout : float
        Seconds a connection has for its request head, and again for its body.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8668,
        path: str = "/ngsi-ld/v1/notify",
        name: str = "http",
        max_body_bytes: int = 10_000_000,
        token: str | None = None,
        max_connections: int = 64,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.path, self.name = host, int(port), path, name
        self.max_body_bytes = int(max_body_bytes)
        self.token = token or None
        self.max_connections = int(max_connections)
        self.timeout = float(timeout)
        self.token_env = "TWIN_FEED_TOKEN"  # where the token came from (for messages)
        self.requests = 0
        self.unauthorised = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None

    @classmethod
    def from_spec(cls, spec) -> HttpSource:
        """From a :class:`scenarios.feeds.HttpSourceSpec` (the token from ``token_env``)."""
        token = os.environ.get(spec.token_env) if spec.token_env else None
        src = cls(
            host=spec.host,
            port=spec.port,
            path=spec.path,
            name=spec.name,
            max_body_bytes=spec.max_body_bytes,
            token=token,
            max_connections=spec.max_connections,
            timeout=spec.timeout,
        )
        src.token_env = spec.token_env
        return src

    @property
    def url(self) -> str:
        """The notification URL (the real port once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"

    @property
    def loopback(self) -> bool:
        """Whether only this machine can connect."""
        return is_loopback(self.host)

    # ------------------------------------------------------------------ the handler
    def _app(self, hub):
        return _Notifications(self, hub)

    # ------------------------------------------------------------------ lifecycle
    def _bind(self) -> socket.socket:
        try:
            family, kind, proto, _, addr = socket.getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            raise InputError(f"feeds source {self.name!r}: cannot listen on {self.host}:{self.port}: {exc}") from None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(min(2048, max(16, 2 * self.max_connections)))
        except OSError as exc:
            sock.close()
            raise InputError(f"feeds source {self.name!r}: cannot listen on {self.host}:{self.port}: {exc}") from None
        sock.setblocking(False)
        return sock

    def start(self, hub) -> None:
        """Bind and serve in a background thread.

        Raises
        ------
        InputError
            The port is taken, or the address is beyond loopback and there is no token.
        """
        if self._server is not None:
            return
        if not self.loopback:
            log.warning(
                "feeds: the HTTP endpoint %s:%d accepts connections from other machines; "
                "requests need the token, and nothing is encrypted (put TLS in front)",
                self.host,
                self.port,
            )
            if self.token is None:
                raise InputError(
                    f"feeds source {self.name!r}: listening on {self.host} (beyond this machine) "
                    f"needs a token: set the environment variable {self.token_env} (token_env); "
                    f"senders then send 'Authorization: Bearer <token>'"
                )
        import uvicorn

        quiet = logging.getLogger("uvicorn.error")
        if quiet.level == logging.NOTSET:  # one warning per bad request or refused connection would
            quiet.setLevel(logging.ERROR)  # flood the terminal under attack; the client gets its 400 or 503
        sock = self._bind()
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(hub),
            lifespan="off",
            ws="none",
            log_config=None,
            access_log=False,
            loop="asyncio",
            http=_protocol_class(self.timeout),
            limit_concurrency=self.max_connections,
            timeout_keep_alive=int(_KEEPALIVE_S),  # uvicorn takes whole seconds
            h11_max_incomplete_event_size=_MAX_HEAD_BYTES,
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server, self._sock = server, sock

        def serve() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # noqa: BLE001  (reported by start / stop)
                self._error = exc
                log.error("http %s: the server stopped: %s", self.name, exc)

        self._thread = threading.Thread(target=serve, name=f"feed-http-{self.name}", daemon=True)
        self._thread.start()
        for _ in range(200):  # up to 10 s
            if server.started or not self._thread.is_alive():
                break
            self._thread.join(0.05)
        if not server.started:
            self.stop()
            raise InputError(
                f"feeds source {self.name!r}: the HTTP server on {self.host}:{self.port} "
                f"did not start: {self._error or 'timed out'}"
            )
        log.info("feeds: NGSI-LD notifications accepted at %s", self.url)

    def stop(self) -> None:
        """Stop serving and release the port."""
        server, self._server = self._server, None
        if server is None:
            return
        server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class _Notifications:
    """The endpoint's ASGI application: checks each request, then hands its body to the hub."""

    def __init__(self, source: HttpSource, hub) -> None:
        from starlette.requests import ClientDisconnect, Request
        from starlette.responses import JSONResponse

        self.Request, self.ClientDisconnect, self.JSONResponse = Request, ClientDisconnect, JSONResponse
        self.source = source
        self.hub = hub
        self.expected = None if source.token is None else f"Bearer {source.token}".encode()

    def answer(self, code: int, body: dict, *, close: bool = False):
        """A JSON answer (``close``: the connection closes after it)."""
        return self.JSONResponse(body, status_code=code, headers={"Connection": "close"} if close else None)

    async def read_body(self, request, n: int) -> bytes:
        """At most ``n`` bytes of the body (a longer one is cut; h11 enforces Content-Length)."""
        chunks, got = [], 0
        async for chunk in request.stream():
            got += len(chunk)
            if got > n:  # h11 enforces Content-Length; this only bounds the buffer
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def gate(self, request):
        """The answer to a request that is not a notification (unauthorised, GET, other methods)."""
        path = request.url.path
        if self.expected is not None:
            got = request.headers.get("authorization", "").encode("latin-1", "replace")
            if not hmac.compare_digest(got, self.expected):
                self.source.unauthorised += 1
                return self.answer(401, {"error": "send Authorization: Bearer <token>"}, close=True)
        if request.method == "GET":
            if path.rstrip("/") == "/health":
                return self.answer(200, {"status": "ok", "counters": self.hub.counters()})
            if path == self.source.path:
                return self.answer(405, {"error": "POST notifications here"})
            return self.answer(404, {"error": f"no such path {path[:200]!r}"})
        if request.method != "POST":
            return self.answer(405, {"error": "POST notifications here"})
        return None

    async def receive(self, request):
        """The notification's body, or the answer refusing it (length, time, content type)."""
        length = request.headers.get("content-length")
        if length is None or not (length.isascii() and length.strip().isdigit()):
            self.hub.reject(None, source=self.source.name, code="malformed", reason="POST without a Content-Length")
            return self.answer(411, {"error": "a Content-Length is required"}, close=True)
        n = int(length)
        if n > self.source.max_body_bytes:
            self.hub.reject(
                f"<{n} bytes not read>",
                source=self.source.name,
                code="malformed",
                reason=f"body of {n} bytes is larger than max_body_bytes={self.source.max_body_bytes}",
            )
            return self.answer(413, {"error": f"body larger than {self.source.max_body_bytes} bytes"}, close=True)
        try:
            body = await asyncio.wait_for(self.read_body(request, n), self.source.timeout)
        except TimeoutError:
            return self.answer(408, {"error": f"the body did not arrive within {self.source.timeout:g} s"}, close=True)
        ctype = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if ctype not in _JSON_TYPES:
            self.hub.reject(
                body,
                source=self.source.name,
                code="malformed",
                reason=f"Content-Type {ctype[:100] or 'missing'!r} is not application/json or application/ld+json",
            )
            return self.answer(415, {"error": "send application/json or application/ld+json"})
        return body

    async def handle(self, request: Any) -> Any:
        """The answer to one request."""
        refused = self.gate(request)
        if refused is not None:
            return refused
        self.source.requests += 1
        if request.url.path != self.source.path:
            return self.answer(404, {"error": f"notifications go to {self.source.path}"})
        body = await self.receive(request)
        if isinstance(body, self.JSONResponse):
            return body
        outcomes = self.hub.push(body, source=self.source.name)
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        if counts.get("rejected", 0) == len(outcomes):
            reasons = sorted({f"{o.code}: {o.reason}" for o in outcomes})
            return self.answer(400, {"error": "; ".join(reasons)[:2000], "outcomes": counts})
        return self.answer(200, {"outcomes": counts})

    async def __call__(self, scope, receive, send) -> None:
        """The ASGI application."""
        if scope["type"] != "http":
            return
        request = self.Request(scope, receive)
        try:
            response = await self.handle(request)
        except self.ClientDisconnect:
            return
        except Exception as exc:  # never let a request stop the endpoint
            log.exception("http %s: request failed", self.source.name)
            response = self.answer(500, {"error": f"{type(exc).__name__}"}, close=True)
        await response(scope, receive, send)
