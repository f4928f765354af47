"""One MQTT connection for the northbound interface: aiomqtt 2.x, MQTT 3.1.1, last will, TLS.

``run()`` connects, subscribes, calls ``on_connect`` (publish ``online``, discovery, states) and
hands every message to ``on_message``; when the connection drops it connects again with
backoff (aiomqtt 2.x reconnects only by re-entering the client). The broker publishes the last
will (``offline``, retained) when the process dies without a clean DISCONNECT; a clean stop
publishes ``offline`` itself first.

(:mod:`fuseguard.cloud.link` is the cloud's link; it sits in a higher layer, so this small
client is the API layer's own.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import paho.mqtt.client as paho
import structlog

from fuseguard.control.ports import DeviceConnectionError, DeviceTimeoutError
from fuseguard.serving.throttle import KeyedLogThrottle, LogThrottle

log = structlog.get_logger(__name__)

#: Incoming messages waiting for the handler; past it the client drops them. Unbounded before: a
#: flood on a subscribed topic (3 000 Home Assistant births in 1 s) queued faster than it was
#: handled, and the edge's memory grew for minutes.
MAX_QUEUED_INCOMING = 1000
#: The default ``[mqtt] max_message_bytes``: a larger inbound payload is dropped unqueued.
MAX_MESSAGE_BYTES = 64 * 1024
#: at most this many characters of a topic reach the log
_MAX_TOPIC_CHARS = 200


class _DropsOncePerBurst(logging.Filter):
    """aiomqtt logs every dropped message ("Message queue is full"): one line per 10 s."""

    def __init__(self) -> None:
        super().__init__()
        self._throttle = LogThrottle()

    def filter(self, record: logging.LogRecord) -> bool:
        if "queue is full" not in record.getMessage():
            return True
        suppressed = self._throttle.admit()
        if suppressed is None:
            return False
        record.msg = f"{record.msg} (and {suppressed} more since the last such line)"
        return True


#: aiomqtt's (and paho's) logger for this connection, with the drop lines throttled
_CLIENT_LOGGER = logging.getLogger("fuseguard.api.mqtt.aiomqtt")
_CLIENT_LOGGER.addFilter(_DropsOncePerBurst())


class BoundedClient(aiomqtt.Client):
    """An aiomqtt client that drops an inbound message in paho's callback, before aiomqtt
    queues it (and before anything parses it), when its payload is above
    ``max_payload_bytes`` or, with ``max_queued_bytes`` set, when it would take the payloads
    waiting in the queue above that many bytes (the reader gives a message's bytes back with
    :meth:`taken` when it takes it off the queue). The edge's MQTT connection bounds the size
    (``[mqtt] max_message_bytes``), the cloud link both (:mod:`fuseguard.cloud.link`).

    Before, any payload size was queued and parsed: a client allowed on a subscribed topic could
    publish megabytes per message into the 1 000-message queue. MQTT 3.1.1 has no maximum packet
    size the broker would enforce for us, so paho still reads the one packet; it is then let go
    at once. A drop is logged once per burst, reason and topic (naming the topic and the size).
    """

    def __init__(
        self, *args: Any, max_payload_bytes: int, max_queued_bytes: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_payload_bytes = max_payload_bytes
        self.max_queued_bytes = max_queued_bytes
        self.queued_bytes = 0
        self.dropped = 0
        self._drop_log = KeyedLogThrottle()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        size = len(message.payload)
        reason = None
        if size > self.max_payload_bytes:
            reason = f"payload over {self.max_payload_bytes} bytes"
        elif self.max_queued_bytes is not None and self.queued_bytes + size > self.max_queued_bytes:
            reason = f"queued payloads at {self.max_queued_bytes} bytes"
        if reason is not None:
            self.dropped += 1
            topic = _clip(message.topic)
            self._drop_log.warning(
                log, "mqtt_message_dropped", reason=reason, host=topic, device=self.identifier,
                topic=topic, size_bytes=size,
            )  # fmt: skip
            return
        if self.max_queued_bytes is None:
            super()._on_message(client, userdata, message)
            return
        before = self._queue.qsize()
        super()._on_message(client, userdata, message)
        if self._queue.qsize() > before:  # queued (aiomqtt drops it itself when full)
            self.queued_bytes += size

    def taken(self, message: aiomqtt.Message) -> None:
        """``message`` left the queue: its bytes no longer count."""
        self.queued_bytes = max(0, self.queued_bytes - _payload_size(message.payload))


def _payload_size(payload: object) -> int:
    if isinstance(payload, bytes | bytearray):
        return len(payload)
    if isinstance(payload, str):
        return len(payload.encode())
    return 0 if payload is None else len(str(payload).encode())


def _clip(topic: str) -> str:
    text = topic.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= _MAX_TOPIC_CHARS else text[: _MAX_TOPIC_CHARS - 3] + "..."


MessageHandler = Callable[[str, bytes, bool], Awaitable[None]]
ConnectHook = Callable[[], Awaitable[None]]


class MqttDownError(DeviceConnectionError):
    """The broker connection is not up."""


class MqttTimeoutError(DeviceTimeoutError):
    """The broker did not acknowledge in time."""


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    """``mqtt://host:1883`` or ``mqtts://host:8883`` (TLS)."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        """Parse and check the scheme; ValueError names the problem."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp"):
            msg = f"unsupported MQTT url scheme {parts.scheme!r} in {url!r} (mqtt:// or mqtts://)"
            raise ValueError(msg)
        if not parts.hostname:
            msg = f"MQTT url {url!r} has no host"
            raise ValueError(msg)
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname, parts.port or (8883 if tls else 1883), tls)


@dataclass(eq=False)
class MqttConnection:
    """A reconnecting MQTT 3.1.1 client with a retained last will on ``will_topic``."""

    url: str
    client_id: str
    will_topic: str
    on_message: MessageHandler
    on_connect: ConnectHook
    subscriptions: tuple[str, ...] = ()
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    keepalive_s: int = 15
    timeout_s: float = 5.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    max_message_bytes: int = MAX_MESSAGE_BYTES
    online_payload: bytes = b"online"
    offline_payload: bytes = b"offline"
    _client: aiomqtt.Client | None = field(default=None, init=False)
    _connected: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    @property
    def connected(self) -> bool:
        """True while the broker connection is up."""
        return self._client is not None and self._connected.is_set()

    async def publish(self, topic: str, payload: bytes, *, retain: bool, qos: int = 1) -> None:
        """Publish; :class:`MqttDownError` when not connected or the publish fails."""
        client = self._client
        if client is None or not self._connected.is_set():
            msg = f"mqtt {self.client_id}: not connected to {self.url}; cannot publish {topic}"
            raise MqttDownError(msg)
        cancels = cancel_requests()
        try:
            async with asyncio.timeout(self.timeout_s):
                await client.publish(topic, payload, qos=qos, retain=retain)
        except TimeoutError as err:
            msg = f"mqtt {self.client_id}: publish to {topic} not acknowledged in time"
            raise MqttTimeoutError(msg) from err
        except aiomqtt.MqttError as err:
            msg = f"mqtt {self.client_id}: publish to {topic} failed: {err}"
            raise MqttDownError(msg) from err
        raise_lost_cancel(cancels)

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait for the connection; :class:`MqttTimeoutError` after ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        except TimeoutError as err:
            msg = f"mqtt {self.client_id}: no connection to {self.url} in {timeout_s:g} s"
            raise MqttTimeoutError(msg) from err

    def _make_client(self) -> BoundedClient:
        broker = BrokerUrl.parse(self.url)
        tls_context = None
        if broker.tls:
            tls_context = ssl.create_default_context(
                cafile=str(self.ca_file) if self.ca_file is not None else None
            )
        return BoundedClient(
            broker.host,
            broker.port,
            username=self.username or None,
            password=self.password or None,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V311,
            will=aiomqtt.Will(self.will_topic, self.offline_payload, qos=1, retain=True),
            clean_session=True,
            keepalive=self.keepalive_s,
            timeout=self.timeout_s,
            tls_context=tls_context,
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
            max_queued_incoming_messages=MAX_QUEUED_INCOMING,
            logger=_CLIENT_LOGGER,
            max_payload_bytes=self.max_message_bytes,
        )

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff; runs until cancelled (then goes offline)."""
        delay_s = self.reconnect_min_s
        while True:
            client = self._make_client()
            cancels = cancel_requests()
            try:
                async with client:
                    raise_lost_cancel(cancels)
                    self._client = client
                    for topic_filter in self.subscriptions:
                        await client.subscribe(topic_filter, qos=1)
                        raise_lost_cancel(cancels)
                    self._connected.set()
                    log.info(
                        "mqtt_connected", device=self.client_id, broker=self.url, reason="connect"
                    )
                    delay_s = self.reconnect_min_s
                    try:
                        await self.on_connect()
                        async for message in client.messages:
                            await self._deliver(
                                str(message.topic), _payload_bytes(message.payload), message.retain
                            )
                    except asyncio.CancelledError:
                        await self._go_offline(client)
                        raise
            except (aiomqtt.MqttError, MqttDownError, MqttTimeoutError) as err:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # going offline failed after a cancel: stop, never reconnect (a swallowed
                    # cancel would keep this task, and whoever waits for it, alive forever)
                    raise asyncio.CancelledError from err
                log.warning(
                    "mqtt_disconnected",
                    device=self.client_id,
                    broker=self.url,
                    reason=str(err),
                    retry_in_s=round(delay_s, 2),
                )
            finally:
                self._connected.clear()
                self._client = None
            # reconnect pacing is wall-time I/O backoff, not control time
            await asyncio.sleep(delay_s * (0.5 + random.random()))
            delay_s = min(self.reconnect_max_s, delay_s * 2)

    async def _deliver(self, topic: str, payload: bytes, retained: bool) -> None:
        """Hand one message to ``on_message``; a failing handler costs that message only."""
        try:
            await self.on_message(topic, payload, retained)
        except (MqttDownError, MqttTimeoutError):
            raise  # the connection is gone: reconnect
        except Exception as exc:
            log.exception("mqtt_message_failed", device=topic, reason=repr(exc))

    async def _go_offline(self, client: aiomqtt.Client) -> None:
        """A clean stop: say ``offline`` ourselves (the broker drops the will on DISCONNECT)."""
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(self.timeout_s):
                await client.publish(self.will_topic, self.offline_payload, qos=1, retain=True)
        log.info("mqtt_offline", device=self.client_id, reason="clean stop")


def cancel_requests() -> int:
    """The current task's pending cancel requests (``Task.cancelling()``)."""
    task = asyncio.current_task()
    return 0 if task is None else task.cancelling()


def raise_lost_cancel(before: int) -> None:
    """Raise a cancel that aiomqtt swallowed (the one place of this fix; the cloud's link uses it).

    Usage: ``before = cancel_requests()``, then any aiomqtt call that waits for the broker
    (connect, subscribe, a QoS 1 publish), then ``raise_lost_cancel(before)``, outside any
    ``asyncio.timeout`` block of that call (that block takes back its own cancel itself).

    aiomqtt waits for the broker's answer with ``asyncio.wait_for``, which on Python 3.11 returns
    the answer instead of raising when the cancel and the answer arrive in the same loop step: the
    cancel is lost (the task's ``cancelling()`` stays raised, nothing raises), and this task, and
    whoever awaits it, would then wait in the message loop for ever (seen as 120 s MQTT teardown
    timeouts in the tests, under load). More requests now than ``before``: cancelled.
    """
    if cancel_requests() > before:
        raise asyncio.CancelledError


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return b"" if payload is None else str(payload).encode()


__all__ = [
    "BoundedClient",
    "BrokerUrl",
    "MqttConnection",
    "MqttDownError",
    "MqttTimeoutError",
    "cancel_requests",
    "raise_lost_cancel",
]
