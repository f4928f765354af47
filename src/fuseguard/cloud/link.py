"""The MQTT link: a small protocol in front of aiomqtt 2.5 (MQTT 3.1.1), with a reconnect loop.

Everything else in ``fuseguard.cloud`` talks to a :class:`Link`, never to aiomqtt, so moving to
aiomqtt 3 (MQTTv5 only, bytes payloads, built-in reconnect) touches this module only.

:class:`MqttLink` owns one aiomqtt client. ``run()`` connects, (re)subscribes every topic given
to :meth:`subscribe`, calls the ``on_connect`` hook (publish "online", republish state), then
hands each incoming message to ``on_message``. When the connection drops it waits and connects
again (aiomqtt 2.x reconnects only by re-entering the context manager, stack.md §2.4).

Nothing a peer sends can end ``run()``: a message longer than ``max_payload_bytes`` is dropped
unread, before it is queued; so is any message while the messages waiting for the handler hold
``max_queued_bytes`` of payload (before, aiomqtt's incoming queue had no bound at all: a
publisher faster than the handler grew the process's memory without limit). An exception from
``on_message`` or ``on_connect`` is logged and the link goes on, and any other error reconnects
with backoff. :func:`supervised` restarts a task that ends anyway.

TLS: ``mqtts://`` or ``ssl://`` (default port 8883) with :class:`TlsSettings`: the CA file that
signed the broker's certificate (the system's CAs when not given), an optional client certificate
and key; certificate and host name verification are always on, TLS 1.2 at least.
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import aiomqtt
import structlog

from fuseguard.api.mqtt.client import BoundedClient, cancel_requests, raise_lost_cancel
from fuseguard.cloud.protocol import MAX_PAYLOAD_BYTES
from fuseguard.control.ports import DeviceConnectionError, DeviceTimeoutError

log = structlog.get_logger(__name__)

#: The default bound of the payload bytes waiting for the handler (1 024 messages of the largest
#: size; a status of a few plugs is ~1 KB, so tens of thousands of ordinary ones).
MAX_QUEUED_BYTES = 64 * 1024 * 1024


class LinkDownError(DeviceConnectionError):
    """The broker connection is not up, so nothing can be published."""


class LinkTimeoutError(DeviceTimeoutError):
    """The broker did not acknowledge a publish in time."""


@dataclass(frozen=True, slots=True)
class LinkMessage:
    """One message received from the broker."""

    topic: str
    payload: bytes
    retain: bool = False


@dataclass(frozen=True, slots=True)
class LastWill:
    """What the broker publishes for us when the connection dies without a clean DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


MessageHandler = Callable[[LinkMessage], Awaitable[None]]
ConnectHook = Callable[[], Awaitable[None]]


class Link(Protocol):
    """Publish bytes, subscribe to topic filters, get messages through a handler."""

    @property
    def connected(self) -> bool:
        """True while the broker connection is up."""

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish; raise :class:`LinkDownError` when not connected."""

    async def subscribe(self, topic_filter: str, *, qos: int = 1) -> None:
        """Subscribe now (if connected) and again after every reconnect."""

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait until connected; raise :class:`LinkTimeoutError` after ``timeout_s``."""


_TLS_SCHEMES = ("mqtts", "ssl")
_PLAIN_SCHEMES = ("mqtt", "tcp")


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Host, port and whether to use TLS, parsed from ``mqtt://host:port`` or ``mqtts://...``."""

    host: str
    port: int
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """``mqtt://``/``tcp://`` (port 1883), ``mqtts://``/``ssl://`` (8883), or ``host:port``."""
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in _PLAIN_SCHEMES + _TLS_SCHEMES:
            msg = (
                f"unsupported broker url scheme {parts.scheme!r} in {url!r} "
                "(use mqtt:// or mqtts://)"
            )
            raise ValueError(msg)
        if not parts.hostname:
            msg = f"broker url {url!r} has no host"
            raise ValueError(msg)
        tls = parts.scheme in _TLS_SCHEMES
        return cls(parts.hostname, parts.port or (8883 if tls else 1883), tls)


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """TLS to the broker: CA file (None: the system's CAs), optional client certificate and key."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @property
    def configured(self) -> bool:
        """True when any file is given."""
        return any(f is not None for f in (self.ca_file, self.cert_file, self.key_file))

    def context(self) -> ssl.SSLContext:
        """A client context: verification and host name check on, TLS 1.2 at least."""
        if self.key_file is not None and self.cert_file is None:
            msg = "a TLS key file needs its certificate file (cert_file)"
            raise ValueError(msg)
        ctx = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=None if self.ca_file is None else str(self.ca_file)
        )
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        if self.cert_file is not None:
            ctx.load_cert_chain(
                str(self.cert_file), None if self.key_file is None else str(self.key_file)
            )
        return ctx


def tls_context(broker_url: str, tls: TlsSettings | None) -> ssl.SSLContext | None:
    """The TLS context for ``broker_url``; None for plain ``mqtt://``.

    TLS files with a plain URL are a configuration error (they would silently not be used).
    """
    address = BrokerAddress.parse(broker_url)
    if not address.tls:
        if tls is not None and tls.configured:
            msg = f"TLS files are configured but broker url {broker_url!r} is not mqtts://"
            raise ValueError(msg)
        return None
    return (tls or TlsSettings()).context()


async def supervised(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    restart_min_s: float = 0.5,
    restart_max_s: float = 30.0,
) -> None:
    """Run ``run()`` forever: if it returns or raises (anything but cancel), log and restart."""
    delay_s = restart_min_s
    while True:
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception:  # a supervisor: log, restart
            log.exception("task_crashed", task=name, reason="restarting", retry_in_s=delay_s)
        else:
            log.warning("task_ended", task=name, reason="restarting", retry_in_s=delay_s)
        # Restart pacing is wall-time I/O backoff, not control time.
        await asyncio.sleep(delay_s)
        delay_s = min(restart_max_s, delay_s * 2)


@dataclass(eq=False)
class MqttLink:
    """A :class:`Link` over aiomqtt 2.5 with MQTT 3.1.1 and a reconnect loop (``run()``)."""

    broker_url: str
    client_id: str
    on_message: MessageHandler
    username: str | None = None
    password: str | None = None
    will: LastWill | None = None
    will_factory: Callable[[], LastWill] | None = None
    on_connect: ConnectHook | None = None
    keepalive_s: int = 30
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 10.0
    publish_timeout_s: float = 5.0
    max_inflight: int = 200
    tls: TlsSettings | None = None
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    max_queued_bytes: int = MAX_QUEUED_BYTES
    _client: BoundedClient | None = field(default=None, init=False)
    _subscriptions: dict[str, int] = field(default_factory=dict, init=False)
    _connected_event: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _tls_context: ssl.SSLContext | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        """Check the URL and the TLS files now: a configuration error fails at start."""
        self._tls_context = tls_context(self.broker_url, self.tls)

    @property
    def connected(self) -> bool:
        """True while the broker connection is up."""
        return self._client is not None and self._connected_event.is_set()

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish ``payload``; raise :class:`LinkDownError` if the link is down."""
        client = self._client
        if client is None or not self._connected_event.is_set():
            msg = f"mqtt link {self.client_id} to {self.broker_url} is down; cannot publish {topic}"
            raise LinkDownError(msg)
        cancels = cancel_requests()
        try:
            async with asyncio.timeout(self.publish_timeout_s):
                await client.publish(topic, payload, qos=qos, retain=retain)
        except TimeoutError as err:
            msg = f"mqtt link {self.client_id}: publish to {topic} not acknowledged in time"
            raise LinkTimeoutError(msg) from err
        except aiomqtt.MqttError as err:
            msg = f"mqtt link {self.client_id}: publish to {topic} failed: {err}"
            raise LinkDownError(msg) from err
        raise_lost_cancel(cancels)  # aiomqtt's wait for the PUBACK may swallow a cancel

    async def subscribe(self, topic_filter: str, *, qos: int = 1) -> None:
        """Remember ``topic_filter`` and subscribe now if connected."""
        self._subscriptions[topic_filter] = qos
        client = self._client
        if client is not None and self._connected_event.is_set():
            cancels = cancel_requests()
            try:
                await client.subscribe(topic_filter, qos=qos)
            except aiomqtt.MqttError as err:
                log.warning(
                    "mqtt_subscribe_failed",
                    device=self.client_id,
                    topic=topic_filter,
                    reason=str(err),
                )
            raise_lost_cancel(cancels)

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait for the first (or next) successful connection."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected_event.wait()
        except TimeoutError as err:
            msg = f"mqtt link {self.client_id}: no connection to {self.broker_url} in {timeout_s}s"
            raise LinkTimeoutError(msg) from err

    def _make_client(self) -> BoundedClient:
        address = BrokerAddress.parse(self.broker_url)
        last_will = self.will_factory() if self.will_factory is not None else self.will
        will = None
        if last_will is not None:
            will = aiomqtt.Will(
                last_will.topic, last_will.payload, qos=last_will.qos, retain=last_will.retain
            )
        client = BoundedClient(
            address.host,
            address.port,
            tls_context=self._tls_context,
            username=self.username,
            password=self.password,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V311,
            will=will,
            clean_session=True,
            keepalive=self.keepalive_s,
            timeout=self.publish_timeout_s,
            max_inflight_messages=self.max_inflight,
            # Small, latency-bound packets (commands, acks): no Nagle delay behind unacked data.
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
            max_payload_bytes=self.max_payload_bytes,
            max_queued_bytes=self.max_queued_bytes,
        )
        # aiomqtt warns above 10 publishes awaiting their PUBACK; a busy cloud replica has many
        # commands in flight by design (up to max_inflight).
        client.pending_calls_threshold = self.max_inflight
        return client

    async def run(self) -> None:
        """Connect, serve messages, reconnect with backoff; runs until cancelled."""
        delay_s = self.reconnect_min_s
        while True:
            cancels = cancel_requests()
            try:
                client = self._make_client()
                async with client:
                    raise_lost_cancel(cancels)  # CONNACK and SUBACK are awaited as PUBACK is
                    self._client = client
                    for topic_filter, qos in self._subscriptions.items():
                        await client.subscribe(topic_filter, qos=qos)
                        raise_lost_cancel(cancels)
                    self._connected_event.set()
                    log.info("mqtt_connected", device=self.client_id, broker=self.broker_url)
                    delay_s = self.reconnect_min_s
                    await self._call_hook()
                    async for message in client.messages:
                        client.taken(message)
                        await self._deliver(message)
            except asyncio.CancelledError:
                raise
            except aiomqtt.MqttError as err:
                # a cancel whose disconnect failed ends here as an MqttError: stop, never reconnect
                raise_lost_cancel(cancels)
                log.warning(
                    "mqtt_disconnected",
                    device=self.client_id,
                    broker=self.broker_url,
                    reason=str(err),
                    retry_in_s=round(delay_s, 2),
                )
            except Exception as err:  # the link outlives any error
                raise_lost_cancel(cancels)
                log.exception(
                    "mqtt_link_error",
                    device=self.client_id,
                    broker=self.broker_url,
                    reason=f"{type(err).__name__}: {err}",
                    retry_in_s=round(delay_s, 2),
                )
            finally:
                self._connected_event.clear()
                self._client = None
            # Reconnect backoff is wall-time I/O pacing, not control time.
            await asyncio.sleep(delay_s * (0.5 + random.random()))
            delay_s = min(self.reconnect_max_s, delay_s * 2)

    async def _call_hook(self) -> None:
        if self.on_connect is None:
            return
        try:
            await self.on_connect()
        except (asyncio.CancelledError, aiomqtt.MqttError):
            raise
        except Exception as err:
            log.exception(
                "mqtt_on_connect_failed", device=self.client_id, reason=f"{type(err).__name__}"
            )

    async def _deliver(self, message: aiomqtt.Message) -> None:
        """Hand one message to ``on_message``; too long or failing: log, drop, go on."""
        topic = str(message.topic)
        payload = message.payload
        if isinstance(payload, str):
            data = payload.encode()
        elif isinstance(payload, bytes | bytearray):
            data = bytes(payload)
        else:
            data = b"" if payload is None else str(payload).encode()
        if len(data) > self.max_payload_bytes:
            log.warning(
                "mqtt_message_dropped",
                device=self.client_id,
                topic=topic[:300],
                reason=f"payload of {len(data)} bytes (limit {self.max_payload_bytes})",
            )
            return
        try:
            await self.on_message(LinkMessage(topic, data, bool(message.retain)))
        except asyncio.CancelledError:
            raise
        except Exception as err:  # one message never ends the link
            log.exception(
                "mqtt_message_failed",
                device=self.client_id,
                topic=topic[:300],
                reason=f"{type(err).__name__}: {str(err)[:300]}",
            )
