"""Fixtures of the feed tests: the small city's link mapper and clock, a hub factory, a real Mosquitto."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from twin.feeds import Cleanser, FeedClock, FeedHub, LinkMapper

DAY = dt.date(2024, 5, 14)
START_S = 7 * 3600.0  # the small scenario starts at 07:00


def iso(t: float) -> str:
    """ISO text of sim time ``t`` on the test clock."""
    return FeedClock.for_day(DAY, start_s=START_S).to_iso(t)


def tfo(sensor: str = "det-1", t: float = 300.0, *, link: int | None = 5, interval: float = 300.0, **values) -> dict:
    """A keyValues TrafficFlowObserved of ``link`` for the period ending at sim ``t``."""
    e = {
        "id": f"urn:ngsi-ld:TrafficFlowObserved:{sensor}",
        "type": "TrafficFlowObserved",
        "dateObservedFrom": iso(t - interval),
        "dateObservedTo": iso(t),
    }
    if link is not None:
        e["refRoadSegment"] = f"urn:ngsi-ld:RoadSegment:{link}"
    e.update(values or {"intensity": 20, "averageVehicleSpeed": 36.0, "occupancy": 0.05})
    return e


@pytest.fixture(scope="session")
def mapper(small_city):
    return LinkMapper(small_city.network, sensors=[{"id": "urn:ngsi-ld:TrafficFlowObserved:cam-1", "link": 7}])


@pytest.fixture(scope="session")
def clock():
    return FeedClock.for_day(DAY, start_s=START_S)


@pytest.fixture
def make_hub(mapper, clock, tmp_path):
    """``make_hub(**cleansing settings)``: a hub writing its dead letters to tmp_path/dead.jsonl."""
    from scenarios.feeds import CleansingSpec

    hubs = []

    def make(**settings) -> FeedHub:
        hub = FeedHub(
            Cleanser(
                clock=clock, mapper=mapper, settings=CleansingSpec(**settings), dead_letter=tmp_path / "dead.jsonl"
            )
        )
        hubs.append(hub)
        return hub

    yield make
    for h in hubs:
        h.stop()


def dead_letters(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ------------------------------------------------------------------------- Mosquitto

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A Mosquitto on a free local port with persistence on (restarts keep persisted sessions)."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {folder}/\n"
            f"log_dest file {folder}/mosquitto.log\n"
            f"user {getpass.getuser()}\n",
            encoding="utf-8",
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.folder / "mosquitto.log").read_text() if (self.folder / "mosquitto.log").exists() else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {log[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not open its port within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # a clean stop writes the persistence file
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def broker(tmp_path):
    if MOSQUITTO is None:
        pytest.skip("the mosquitto binary is not installed (CI installs it: apt-get install mosquitto)")
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()
