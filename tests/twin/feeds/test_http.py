"""The NGSI-LD notification endpoint: a POSTed notification reaches the queue; a malformed one
gets a 400 and is dead-lettered."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.twin.feeds.conftest import dead_letters, tfo
from twin.feeds import to_normalized
from twin.feeds.http import HttpSource


def _post(url: str, body: bytes, ctype: str = "application/ld+json") -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@pytest.fixture
def served(make_hub):
    hub = make_hub()
    src = hub.add_source(HttpSource(port=0, max_body_bytes=50_000))
    hub.start()
    yield hub, src
    hub.stop()


def test_notification_reaches_the_queue(served):
    hub, src = served
    assert src.host == "127.0.0.1" and src.port > 0  # local only, on a free port
    note = {
        "id": "urn:ngsi-ld:Notification:7",
        "type": "Notification",
        "subscriptionId": "urn:ngsi-ld:Subscription:1",
        "notifiedAt": "2024-05-14T07:05:02Z",
        "data": [to_normalized(tfo("n1", 300.0)), to_normalized(tfo("n2", 300.0, link=6))],
    }
    code, body = _post(src.url, json.dumps(note).encode())
    assert (code, body) == (200, {"outcomes": {"accepted": 2}})
    recs = hub.drain(1000.0)
    assert [(r.id[-2:], r.link) for r in recs] == [("n1", 5), ("n2", 6)]
    assert hub.counters() == {"http": {"accepted": 2, "rejected": 0, "late": 0, "duplicate": 0}}
    code, body = _post(src.url, json.dumps(note).encode(), "application/json; charset=utf-8")  # resent
    assert (code, body) == (200, {"outcomes": {"duplicate": 2}})
    with urllib.request.urlopen(f"http://127.0.0.1:{src.port}/health", timeout=10) as resp:
        assert json.loads(resp.read())["counters"]["http"]["duplicate"] == 2


@pytest.mark.parametrize(
    "body,words",
    [
        (b'{"type": "Notification", "data": [', "not JSON"),
        (json.dumps({"type": "Notification", "data": {"id": "x"}}).encode(), "'data' list"),
        (json.dumps({"type": "Notification", "data": [tfo(intensity=-5)]}).encode(), "negative intensity"),
    ],
)
def test_malformed_notification_gets_400_and_is_dead_lettered(body, words, served, tmp_path):
    hub, src = served
    code, answer = _post(src.url, body)
    assert code == 400 and words in answer["error"]
    (entry,) = dead_letters(tmp_path / "dead.jsonl")
    assert entry["source"] == "http" and words in entry["reason"]
    assert hub.counters()["http"]["rejected"] == 1 and hub.drain(1e6, flush=True) == []


def test_other_refusals(served, tmp_path):
    hub, src = served
    code, _ = _post(src.url, json.dumps(tfo()).encode(), "text/plain")
    assert code == 415
    code, _ = _post(src.url, b"x" * 60_000)
    assert code == 413
    code, _ = _post(src.url.replace("/notify", "/elsewhere"), json.dumps(tfo()).encode())
    assert code == 404
    reasons = [e["reason"] for e in dead_letters(tmp_path / "dead.jsonl")]
    assert len(reasons) == 2 and "text/plain" in reasons[0] and "max_body_bytes" in reasons[1]
    # a partly good notification is taken (200) with the bad entity dead-lettered
    note = {"type": "Notification", "data": [tfo("ok"), tfo("bad", occupancy=3.0)]}
    code, body = _post(src.url, json.dumps(note).encode())
    assert (code, body) == (200, {"outcomes": {"accepted": 1, "rejected": 1}})


def test_port_in_use_is_an_input_error(served, make_hub):
    from basics.errors import InputError

    _, src = served
    with pytest.raises(InputError, match=f"cannot listen on 127.0.0.1:{src.port}"):
        make_hub().add_source(HttpSource(port=src.port)).start(None)
