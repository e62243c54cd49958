"""HTTP endpoint for NGSI-LD notifications, as an Orion-LD subscription POSTs them.

Bound to ``127.0.0.1`` by default (local connections only; put a reverse proxy with TLS
and authentication in front to accept a remote broker). Requests:

- ``POST {path}`` with ``Content-Type: application/json`` or ``application/ld+json``: a
  Notification (``{"type": "Notification", "data": [entities]}``), an entity or a list
  of entities, in either form. Answers ``200`` with the outcome counts when at least one
  entity was taken (accepted, duplicate or late); ``400`` with the reason when the body
  is malformed or every entity in it was rejected (each is dead-lettered); ``413`` when
  the body is larger than ``max_body_bytes``; ``415`` for another content type; ``411``
  without a ``Content-Length``.
- ``GET /health``: the hub's counters as JSON.

The server runs in its own threads (stdlib :class:`~http.server.ThreadingHTTPServer`);
each notification is cleansed into the hub's queue before the answer is sent.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from twin.errors import InputError

__all__ = ["HttpSource"]

log = logging.getLogger(__name__)

_JSON_TYPES = ("application/json", "application/ld+json")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


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
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 8668, path: str = "/ngsi-ld/v1/notify",
                 name: str = "http", max_body_bytes: int = 10_000_000) -> None:
        self.host, self.port, self.path, self.name = host, int(port), path, name
        self.max_body_bytes = int(max_body_bytes)
        self.requests = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The notification URL (the real port once started)."""
        return f"http://{self.host}:{self.port}{self.path}"

    def start(self, hub) -> None:
        """Bind and serve in a background thread."""
        if self._server is not None:
            return
        source = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "city-twin-feeds/1"

            def log_message(self, fmt, *args):  # through logging, not stderr
                log.debug("http %s: " + fmt, source.name, *args)

            def _answer(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/") == "/health":
                    self._answer(200, {"status": "ok", "counters": hub.counters()})
                elif self.path == source.path:
                    self._answer(405, {"error": "POST notifications here"})
                else:
                    self._answer(404, {"error": f"no such path {self.path!r}"})

            def do_POST(self):
                source.requests += 1
                if self.path.split("?", 1)[0] != source.path:
                    self._answer(404, {"error": f"notifications go to {source.path}"})
                    return
                length = self.headers.get("Content-Length")
                if length is None or not length.strip().isdigit():
                    hub.reject(None, source=source.name, code="malformed",
                               reason="POST without a Content-Length")
                    self._answer(411, {"error": "a Content-Length is required"})
                    return
                n = int(length)
                if n > source.max_body_bytes:
                    hub.reject(f"<{n} bytes not read>", source=source.name, code="malformed",
                               reason=f"body of {n} bytes is larger than max_body_bytes={source.max_body_bytes}")
                    self.close_connection = True
                    self._answer(413, {"error": f"body larger than {source.max_body_bytes} bytes"})
                    return
                body = self.rfile.read(n)
                ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
                if ctype not in _JSON_TYPES:
                    hub.reject(body, source=source.name, code="malformed",
                               reason=f"Content-Type {ctype or 'missing'!r} is not application/json "
                                      f"or application/ld+json")
                    self._answer(415, {"error": "send application/json or application/ld+json"})
                    return
                outcomes = hub.push(body, source=source.name)
                counts: dict[str, int] = {}
                for o in outcomes:
                    counts[o.status] = counts.get(o.status, 0) + 1
                if counts.get("rejected", 0) == len(outcomes):
                    reasons = sorted({f"{o.code}: {o.reason}" for o in outcomes})
                    self._answer(400, {"error": "; ".join(reasons)[:2000], "outcomes": counts})
                else:
                    self._answer(200, {"outcomes": counts})

        try:
            self._server = _Server((self.host, self.port), Handler)
        except OSError as exc:
            raise InputError(f"feeds source {self.name!r}: cannot listen on {self.host}:{self.port}: {exc}") from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"feed-http-{self.name}", daemon=True)
        self._thread.start()
        log.info("feeds: NGSI-LD notifications accepted at %s", self.url)

    def stop(self) -> None:
        """Stop serving and release the port."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
