"""MQTT subscription: a persistent QoS-1 session feeding the hub.

The subscriber connects with a fixed client id and ``clean_session=False`` (MQTT 3.1.1) or
``clean_start=False`` with a session expiry (MQTT 5), so the broker keeps its
subscription and queues QoS-1 messages while the twin is away (or the broker restarts,
with persistence on); paho reconnects by itself and the broker then delivers what was
queued. A message is acknowledged (PUBACK) only after :meth:`FeedHub.push` has cleansed
it into the queue, so nothing acknowledged is lost; QoS 1 may deliver twice, and
cleansing counts the repeat as a duplicate.

Each MQTT message's payload is one raw message: an entity, a list of entities or an
NGSI-LD Notification, in either form.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from basics.errors import InputError

if TYPE_CHECKING:
    import paho.mqtt.client

    from twin.feeds.hub import FeedHub

__all__ = ["MqttSource"]

log = logging.getLogger(__name__)


class MqttSource:
    """Subscribes to a topic filter on an MQTT broker and pushes every message into a hub.

    Parameters
    ----------
    host, port : str, int
        The broker.
    topic : str
        Topic filter (wildcards ``+`` and ``#`` allowed).
    client_id : str
        Fixed id: the broker keeps this session between connections.
    qos : int
        Subscription QoS (1: at least once).
    name : str
        Source name in counters.
    protocol : {"3.1.1", "5"}
        MQTT version.
    session_expiry : float
        MQTT 5: seconds the broker keeps the session after a disconnect.
    username, password : str or None
        Broker credentials.
    keepalive : float
        Keep-alive interval, seconds.
    reconnect_max_s : int
        Longest wait between reconnection attempts (they start at 1 s and double).
    """

    def __init__(  # noqa: PLR0913  (keyword-only: one per MQTT setting, as the scenario's source spec has them)
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        topic: str = "ngsi-ld/#",
        client_id: str = "city-twin",
        qos: int = 1,
        name: str = "mqtt",
        protocol: str = "3.1.1",
        session_expiry: float = 86400.0,
        username: str | None = None,
        password: str | None = None,
        keepalive: float = 30.0,
        reconnect_max_s: int = 5,
    ) -> None:
        if protocol not in ("3.1.1", "5"):
            raise InputError(f"MQTT protocol must be '3.1.1' or '5', got {protocol!r}")
        if not client_id:
            raise InputError("a persistent MQTT session needs a fixed, non-empty client_id")
        self.host, self.port, self.topic = host, int(port), topic
        self.client_id, self.qos, self.name = client_id, int(qos), name
        self.protocol, self.session_expiry = protocol, float(session_expiry)
        self.username, self.password = username, password
        self.keepalive = int(max(5, keepalive))
        self.reconnect_max_s = int(max(1, reconnect_max_s))
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.session_present = False
        self.connects = 0
        self.messages = 0
        self.refused = ""  # the broker's reason when it refused the connection
        self._client: paho.mqtt.client.Client | None = None
        self._hub: FeedHub | None = None

    @classmethod
    def from_spec(cls, spec) -> MqttSource:
        """From a :class:`scenarios.feeds.MqttSourceSpec` (password from ``password_env``)."""
        password = None
        if spec.password_env:
            password = os.environ.get(spec.password_env)
            if password is None:
                raise InputError(
                    f"feeds source {spec.name!r}: environment variable "
                    f"{spec.password_env!r} (the MQTT password) is not set"
                )
        return cls(
            host=spec.host,
            port=spec.port,
            topic=spec.topic,
            client_id=spec.client_id,
            qos=spec.qos,
            name=spec.name,
            protocol=spec.protocol,
            session_expiry=spec.session_expiry,
            username=spec.username,
            password=password,
            keepalive=spec.keepalive,
        )

    # ------------------------------------------------------------------ paho callbacks
    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
            log.warning(
                "MQTT %s: broker %s:%d refused the connection: %s", self.name, self.host, self.port, reason_code
            )
            return
        self.connects += 1
        self.session_present = bool(getattr(flags, "session_present", False))
        log.info(
            "MQTT %s: connected to %s:%d (session %s)",
            self.name,
            self.host,
            self.port,
            "resumed" if self.session_present else "new",
        )
        self.connected.set()
        # subscribing again on a resumed session is harmless and covers a broker that lost it
        client.subscribe(self.topic, qos=self.qos)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties=None) -> None:
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("MQTT %s: subscription to %r refused: %s", self.name, self.topic, failed[0])
            return
        self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if self._client is not None:
            log.warning(
                "MQTT %s: disconnected from %s:%d (%s); reconnecting", self.name, self.host, self.port, reason_code
            )

    def _on_message(self, client, userdata, msg) -> None:
        self.messages += 1
        hub = self._hub
        if hub is None:  # (messages come only after start, which sets it)
            return
        try:
            hub.push(msg.payload, source=self.name)
        except Exception:  # push does not raise; this keeps paho's thread alive if it ever did
            log.exception("MQTT %s: message on %r could not be queued", self.name, msg.topic)

    # ------------------------------------------------------------------ lifecycle
    def start(self, hub: FeedHub) -> None:
        """Connect (in the background; paho's thread reconnects as needed) and subscribe."""
        import paho.mqtt.client as mqtt

        if self._client is not None:
            return
        self._hub = hub
        v5 = self.protocol == "5"
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=None if v5 else False,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        )
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=self.reconnect_max_s)
        kwargs: dict[str, Any] = {}
        if v5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = int(self.session_expiry)
            kwargs = {"clean_start": False, "properties": props}
        self._client = client
        client.connect_async(self.host, self.port, keepalive=self.keepalive, **kwargs)
        client.loop_start()

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until connected to the broker; fail naming the address and the reason.

        Raises
        ------
        InputError
            Within ``timeout`` seconds (at once when nothing listens at the address).
        """
        deadline = time.monotonic() + float(timeout)
        if self.connected.wait(min(1.0, float(timeout))):
            return
        where = f"feeds source {self.name!r}: cannot connect to the MQTT broker at {self.host}:{self.port}"
        left = max(0.1, deadline - time.monotonic())
        try:  # why: nothing listening, no route, an unknown host
            with socket.create_connection((self.host, self.port), timeout=min(left, 5.0)):
                pass
        except OSError as exc:
            raise InputError(f"{where}: {exc.strerror or exc}") from None
        if self.connected.wait(max(0.0, deadline - time.monotonic())):
            return
        reason = (
            f"the broker refused: {self.refused}" if self.refused else f"no MQTT answer (CONNACK) within {timeout:g} s"
        )
        raise InputError(f"{where}: {reason}")

    def stop(self) -> None:
        """Disconnect; the broker keeps the session (and queues messages) for the next start."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.disconnect()
        finally:
            client.loop_stop()
            self.connected.clear()
            self.subscribed.clear()
