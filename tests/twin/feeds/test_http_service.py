"""The NGSI-LD endpoint as a service (issue 15, part 6): slow clients hold no threads and time out,
connections are capped, malformed heads never reach the handler, a token guards it, and binding
beyond loopback needs one."""

from __future__ import annotations

import json
import logging
import re
import socket
import time

import psutil
import pytest

from basics.errors import InputError
from tests.twin.feeds.conftest import tfo
from twin.feeds.http import HttpSource, is_loopback

BODY = json.dumps(tfo("h1", 300.0)).encode()


def _raw(port: int, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a fresh connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            got = b"".join(chunks)
            head, sep, body = got.partition(b"\r\n\r\n")
            if sep and b"close" in head.lower():
                # the head and the body may come in separate packets: wait for the whole body
                m = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
                if m is None or len(body) >= int(m.group(1)):
                    break
        return b"".join(chunks)


def _post(src: HttpSource, body: bytes = BODY, *, headers: str = "") -> bytes:
    head = (
        f"POST {src.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{headers}\r\n"
    ).encode()
    return _raw(src.port, head + body)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


@pytest.fixture
def serve(make_hub):
    started = []

    def make(**kw) -> HttpSource:
        hub = make_hub()
        src = hub.add_source(HttpSource(port=0, **kw))
        hub.start()
        started.append(hub)
        return src

    yield make
    for hub in started:
        hub.stop()


def test_slow_clients_hold_no_threads_and_time_out(serve):
    """300 half-sent bodies used to make 306 threads, held for as long as the clients liked."""
    src = serve(max_connections=32, timeout=1.0)
    proc = psutil.Process()
    threads0 = proc.num_threads()
    slow = []
    head = (
        f"POST {src.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    ).encode()
    for _ in range(300):
        s = socket.create_connection(("127.0.0.1", src.port), timeout=10)
        s.sendall(head)
        slow.append(s)
    dribble = socket.create_connection(("127.0.0.1", src.port), timeout=10)
    dribble.sendall(b"POST /ngsi-ld/v1/no")  # a request head that never ends
    try:
        time.sleep(0.3)
        assert proc.num_threads() <= threads0 + 2
        t0 = time.monotonic()
        codes = []
        for s in slow:  # every one is answered (408 after the body timeout, or 503 over the cap)
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            codes.append(_status(data))
        assert set(codes) <= {408, 503} and len(codes) == 300, sorted(set(codes))
        assert time.monotonic() - t0 < 15.0  # timeout 1 s; generous for a busy machine
        assert dribble.recv(4096) == b""  # closed without an answer
        assert _status(_post(src)) == 200  # and the endpoint still serves
    finally:
        for s in slow + [dribble]:
            s.close()


def test_a_body_that_does_not_arrive_gets_408(serve):
    src = serve(timeout=0.5)
    head = (
        f"POST {src.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    ).encode()
    t0 = time.monotonic()
    answer = _raw(src.port, head)
    assert _status(answer) == 408 and b"did not arrive within 0.5 s" in answer
    assert 0.4 < time.monotonic() - t0 < 8.0  # generous: the machine may be busy


def test_connections_over_the_cap_get_503(serve):
    src = serve(max_connections=2, timeout=5.0)
    idle = [socket.create_connection(("127.0.0.1", src.port), timeout=10) for _ in range(2)]
    try:
        time.sleep(0.2)
        assert _status(_post(src)) == 503
    finally:
        for s in idle:
            s.close()
    time.sleep(0.2)
    assert _status(_post(src)) == 200


@pytest.mark.parametrize("length", ["\u00b2".encode(), b"-1", b"12abc", b"99999999999999999999999999"])
def test_malformed_heads_get_400_and_the_server_goes_on(length, serve):
    """``Content-Length: ²`` used to raise inside the handler."""
    src = serve(max_body_bytes=50_000)
    head = (f"POST {src.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n").encode()
    answer = _raw(src.port, head + b"Content-Length: " + length + b"\r\nConnection: close\r\n\r\n" + BODY)
    assert _status(answer) in (400, 413)
    assert _status(_post(src)) == 200


def test_a_token_guards_the_endpoint(serve):
    src = serve(token="s3cret")
    assert _status(_post(src)) == 401
    assert _status(_post(src, headers="Authorization: Bearer wrong\r\n")) == 401
    assert _status(_post(src, headers="Authorization: Bearer s3cret\r\n")) == 200
    assert src.unauthorised == 2


def test_binding_beyond_loopback_needs_a_token(make_hub, caplog):
    """``--feed http://0.0.0.0:P`` used to serve anyone, without a word."""
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.7")
    hub = make_hub()
    src = HttpSource(host="0.0.0.0", port=0)
    with caplog.at_level(logging.WARNING, logger="twin.feeds.http"):
        with pytest.raises(InputError, match="needs a token: set the environment variable TWIN_FEED_TOKEN"):
            src.start(hub)
    assert "accepts connections from other machines" in caplog.text
    assert src._server is None  # nothing was bound


def test_the_token_comes_from_the_environment(monkeypatch):
    from scenarios.feeds import FeedsSpec

    spec = FeedsSpec.model_validate(
        {
            "sources": [
                {
                    "kind": "http",
                    "host": "0.0.0.0",
                    "port": 0,
                    "token_env": "MY_FEED_TOKEN",
                    "max_connections": 8,
                    "timeout": "3s",
                }
            ]
        }
    ).sources[0]
    monkeypatch.delenv("MY_FEED_TOKEN", raising=False)
    assert HttpSource.from_spec(spec).token is None
    monkeypatch.setenv("MY_FEED_TOKEN", "abc")
    src = HttpSource.from_spec(spec)
    assert (src.token, src.max_connections, src.timeout, src.token_env) == ("abc", 8, 3.0, "MY_FEED_TOKEN")
