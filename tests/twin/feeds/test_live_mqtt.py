"""Shadow mode over MQTT: the live twin advances in step with the feed's clock, never ahead of it,
and no single sender moves that clock."""

from __future__ import annotations

import threading

from tests.twin.conftest import small_scenario
from tests.twin.feeds.conftest import DAY, tfo
from tests.twin.feeds.test_mqtt import _publish


def test_the_live_twin_follows_the_feed_clock(broker, small_city):
    from scenarios import load_scenario
    from twin.feeds import FeedHub
    from twin.live import AssimilationSettings, Shadow

    base = small_scenario()
    spec = base.resolved() | {
        "feeds": {
            "date": DAY.isoformat(),
            "cleansing": {"reorder_window": 60},
            "sources": [{"kind": "mqtt", "port": broker.port, "topic": "city/#", "client_id": "live-twin"}],
        }
    }
    sc = load_scenario(spec)
    hub = FeedHub.from_scenario(sc, small_city.network)
    sh = Shadow(sc, hub, AssimilationSettings(members=2), city=small_city)
    stop = threading.Event()
    runner = threading.Thread(target=sh.run, kwargs={"stop": stop, "idle_s": 0.01})
    try:
        src = hub.sources[0]
        assert src.subscribed.wait(10)
        runner.start()

        def until_now(t: float) -> None:
            for _ in range(200):
                if sh.now >= t:
                    break
                threading.Event().wait(0.05)

        # three sensors, every 5 minutes up to 20 min
        _publish(
            broker,
            "city/traffic",
            [tfo(s, 300.0 * (i + 1), intensity=10 + i) for i in range(4) for s in ("a", "b", "c")],
        )
        assert hub.wait(lambda h: h.totals()["accepted"] >= 12, timeout=10)
        # the reorder window (60 s) holds the twin one step behind the feed's clock
        until_now(900.0)
        assert sh.now == 900.0  # caught up with the feed's clock...
        threading.Event().wait(0.3)
        assert sh.now == 900.0 and hub.feed_time == 1200.0  # ...and waits there for more
        # one sender two hours ahead does not move the clock: it is held...
        _publish(broker, "city/traffic", [tfo("evil", 1200.0 + 7200.0)])
        assert hub.wait(lambda h: h.received >= 13, timeout=10)
        threading.Event().wait(0.3)
        assert sh.now == 900.0 and hub.feed_time == 1200.0
        # one sender of the next period alone does not move it either; two do
        _publish(broker, "city/traffic", [tfo("a", 1500.0)])
        assert hub.wait(lambda h: h.received >= 14, timeout=10)
        threading.Event().wait(0.3)
        assert sh.now == 900.0
        _publish(broker, "city/traffic", [tfo("b", 1500.0)])
        until_now(1200.0)
        assert sh.now == 1200.0
        assert sh.status()["lag_s"] == 300.0
        # ...and dead-lettered as future once the feed has moved on without it
        _publish(broker, "city/traffic", [tfo(s, 1800.0, intensity=20) for s in "abc"])
        assert hub.wait(lambda h: h.received >= 18, timeout=10)
        until_now(1500.0)
        assert sh.now == 1500.0 and hub.feed_time == 1800.0
        assert hub.reasons() == {"mqtt": {"future": 1}}
        assert hub.totals() == {"accepted": 17, "rejected": 1, "late": 0, "duplicate": 0}
    finally:
        stop.set()
        runner.join(10)
        sh.close()
