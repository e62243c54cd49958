"""Shadow mode over MQTT: the live twin advances in step with the feed's clock, never ahead of it."""

from __future__ import annotations

import threading

from tests.twin.conftest import small_scenario
from tests.twin.feeds.conftest import DAY, tfo
from tests.twin.feeds.test_mqtt import _publish


def test_the_live_twin_follows_the_feed_clock(broker, small_city):
    from scenarios import load_scenario
    from twin.assimilation import AssimilationSettings
    from twin.feeds import FeedHub
    from twin.live import Shadow

    base = small_scenario()
    spec = base.resolved() | {"feeds": {"date": DAY.isoformat(), "cleansing": {"reorder_window": 0},
                                        "sources": [{"kind": "mqtt", "port": broker.port, "topic": "city/#",
                                                     "client_id": "live-twin"}]}}
    sc = load_scenario(spec)
    hub = FeedHub.from_scenario(sc, small_city.network)
    sh = Shadow(sc, hub, AssimilationSettings(members=2), city=small_city)
    stop = threading.Event()
    runner = threading.Thread(target=sh.run, kwargs={"stop": stop, "idle_s": 0.01})
    try:
        src = hub.sources[0]
        assert src.subscribed.wait(10)
        runner.start()
        _publish(broker, "city/traffic", [tfo(f"d{i}", 300.0 * (i + 1)) for i in range(4)])  # up to 20 min
        assert hub.wait(lambda h: h.totals()["accepted"] >= 4, timeout=10)
        for _ in range(200):
            if sh.now >= 1200.0:
                break
            threading.Event().wait(0.05)
        assert sh.now == 1200.0  # caught up with the feed's clock...
        threading.Event().wait(0.3)
        assert sh.now == 1200.0  # ...and waits there for more
        _publish(broker, "city/traffic", [tfo("d9", 1800.0)])
        for _ in range(200):
            if sh.now >= 1800.0:
                break
            threading.Event().wait(0.05)
        assert sh.now == 1800.0
        assert sh.status()["lag_s"] == 0.0
    finally:
        stop.set()
        runner.join(10)
        sh.close()
