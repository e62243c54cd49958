"""MQTT against a real Mosquitto: messages reach the queue; a broker restart loses nothing sent with
QoS 1 once the subscriber's session is persisted."""

from __future__ import annotations

import json
import uuid

import paho.mqtt.client as mqtt
import pytest

from tests.twin.feeds.conftest import tfo
from twin.feeds.mqtt import MqttSource


def _publish(broker, topic: str, payloads: list) -> None:
    """Publish with QoS 1 and wait for every PUBACK (the broker has the message)."""
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        infos = [pub.publish(topic, p if isinstance(p, (bytes, str)) else json.dumps(p), qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(timeout=10)
            assert info.is_published()
    finally:
        pub.disconnect()
        pub.loop_stop()


def _batch(tag: str, n: int, t0: float) -> list[dict]:
    return [tfo(f"{tag}{i}", t0 + 300.0 * i, link=5 + i % 3) for i in range(n)]


def _accepted(hub) -> int:
    return hub.counters().get("mqtt", {}).get("accepted", 0)


def test_messages_published_to_the_broker_reach_the_queue(broker, make_hub):
    hub = make_hub()
    src = hub.add_source(MqttSource(port=broker.port, topic="city/+/traffic/#", client_id="twin-a"))
    with hub:
        assert src.subscribed.wait(10)
        _publish(broker, "city/north/traffic/det", _batch("m", 5, 300.0))
        _publish(broker, "city/south/traffic/det/raw", [b"{broken json"])
        _publish(broker, "city/north/weather", [tfo("not-subscribed")])  # outside the topic filter
        assert hub.wait(lambda h: sum(h.counters().get("mqtt", {}).values()) >= 6, timeout=10)
        recs = hub.drain(10_000.0)
    assert sorted(r.id.rsplit(":", 1)[1] for r in recs) == [f"m{i}" for i in range(5)]
    assert hub.counters() == {"mqtt": {"accepted": 5, "rejected": 1, "late": 0, "duplicate": 0}}
    assert hub.reasons() == {"mqtt": {"malformed": 1}}


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_broker_restart_loses_nothing_sent_with_qos1(protocol, broker, make_hub):
    hub = make_hub()
    src = hub.add_source(
        MqttSource(
            port=broker.port, topic="city/traffic", client_id=f"twin-{protocol}", protocol=protocol, reconnect_max_s=1
        )
    )
    hub.start()
    assert src.subscribed.wait(10)
    _publish(broker, "city/traffic", _batch("a", 5, 300.0))  # while connected
    assert hub.wait(lambda h: _accepted(h) == 5, timeout=10)

    src.stop()  # the twin goes away; its session (subscription + queue) stays on the broker
    _publish(broker, "city/traffic", _batch("b", 5, 3000.0))  # queued for the absent subscriber
    broker.restart()  # ... and the broker restarts in between (persistence on)
    src.start(hub)  # the twin comes back under the same client id
    assert hub.wait(lambda h: _accepted(h) == 10, timeout=15), hub.counters()
    assert src.session_present

    broker.restart()  # the broker restarts while the twin runs: paho reconnects by itself
    assert hub.wait(lambda h: src.connects >= 2 and src.subscribed.is_set(), timeout=15)
    _publish(broker, "city/traffic", _batch("c", 5, 6000.0))
    assert hub.wait(lambda h: _accepted(h) == 15, timeout=10), hub.counters()
    hub.stop()
    ids = sorted(r.id.rsplit(":", 1)[1] for r in hub.drain(1e6, flush=True))
    assert ids == sorted(f"{t}{i}" for t in "abc" for i in range(5))
    c = hub.counters()["mqtt"]
    assert (c["accepted"], c["rejected"], c["late"]) == (15, 0, 0)  # redeliveries, if any, are duplicates
