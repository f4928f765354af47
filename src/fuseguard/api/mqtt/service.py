"""The MQTT interface of an edge: state publisher, commands, Home Assistant discovery.

:class:`MqttInterface` owns one :class:`~fuseguard.api.mqtt.client.MqttConnection`. On every
(re)connect it publishes ``online``, the discovery configs and every state topic; afterwards a
publisher task reads :meth:`Controller.status` (and the flex settings) every
``min_interval_s`` and publishes the topics whose payload changed, each at most once per
interval. Commands wake it at once so their effect shows without waiting for the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import TYPE_CHECKING

import structlog

from fuseguard.api.mqtt.client import MqttConnection, MqttDownError, MqttTimeoutError
from fuseguard.api.mqtt.commands import CommandHandler
from fuseguard.api.mqtt.discovery import Discovery
from fuseguard.api.mqtt.state import (
    ONLINE,
    DepartureView,
    PlugSettingsView,
    Topics,
    plug_messages,
    settings_from_specs,
    site_messages,
)
from fuseguard.api.site_state import plug_keys
from fuseguard.config import FuseguardConfig
from fuseguard.config.controller import charger_specs
from fuseguard.control.flex import FlexManagement
from fuseguard.control.plug_settings import RUNTIME_KEY, PlugSettings
from fuseguard.control.types import ControllerStatus
from fuseguard.model.clock import Clock

if TYPE_CHECKING:
    from fuseguard.runtime import EdgeRuntime

log = structlog.get_logger(__name__)

#: Home Assistant births closer together than this get one republish (the last one deferred)
HA_BIRTH_INTERVAL_S = 10.0


@dataclass(eq=False)
class MqttInterface:
    """Publisher + commands + discovery for one edge (see module docstring)."""

    config: FuseguardConfig
    clock: Clock
    status: Callable[[], ControllerStatus]
    flex: FlexManagement | None = None
    plug_settings: PlugSettings | None = None
    #: the zone of departure times of day (``HH:MM``); None: the process's local zone
    tz: tzinfo | None = None
    _sent: dict[str, tuple[str, float]] = field(default_factory=dict, init=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _publish_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _ha_birth_at: float | None = field(default=None, init=False)
    _ha_birth_pending: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        mc = self.config.mqtt
        if mc.url is None:
            msg = "[mqtt] url is not set"
            raise ValueError(msg)
        edge_id = self.config.site.edge_id
        self.topics = Topics(f"{mc.topic_prefix}/{edge_id}")
        specs = {s.id: s for s in charger_specs(self.config.chargers)}
        self.keys = plug_keys(specs)
        self._config_settings = settings_from_specs(specs)
        self.commands = CommandHandler(
            self.topics, self.flex, self.keys, self.plug_settings, clock=self.clock, tz=self.tz
        )
        self.discovery = (
            Discovery(
                self.config,
                self.topics,
                self.keys,
                prefix=mc.discovery_prefix,
                writable_plug_settings=self.plug_settings is not None,
            )
            if mc.discovery
            else None
        )
        subscriptions: list[str] = list(self.topics.command_filters) if mc.commands else []
        if self.discovery is not None:
            subscriptions += [self.discovery.birth_topic, self.discovery.node_filter]
        self.connection = MqttConnection(
            url=mc.url,
            client_id=mc.client_id or f"fuseguard-{edge_id}",
            will_topic=self.topics.availability,
            on_message=self._on_message,
            on_connect=self._on_connect,
            subscriptions=tuple(subscriptions),
            username=mc.user or None,
            password=mc.password.get_secret_value() or None,
            ca_file=mc.ca_file,
            max_message_bytes=mc.max_message_bytes,
        )

    # --- state -----------------------------------------------------------------------------------

    def messages(self) -> dict[str, str]:
        """Every state topic and its payload now."""
        st = self.status()
        settings = self._config_settings
        if self.plug_settings is not None:
            now = self.clock.now()
            settings = {
                pid: PlugSettingsView(
                    s.mode.value,
                    s.priority,
                    DepartureView(*self.commands.departure_shown(pid, now)),
                )
                for pid, s in self.plug_settings.all().items()
            }
        out = site_messages(self.topics, st, self.flex)
        out.update(plug_messages(self.topics, st, self.keys, settings, self.tz))
        return out

    async def publish_changes(self, *, force: bool = False) -> int:
        """Publish changed topics (all with ``force``), each at most once per interval."""
        interval = self.config.mqtt.min_interval_s
        count = 0
        async with self._publish_lock:
            now = self.clock.monotonic()
            for topic, payload in self.messages().items():
                last = self._sent.get(topic)
                if (
                    not force
                    and last is not None
                    and (last[0] == payload or now - last[1] < interval)
                ):
                    continue
                await self.connection.publish(topic, payload.encode(), retain=True)
                self._sent[topic] = (payload, now)
                count += 1
        return count

    async def run_publisher(self) -> None:
        """Publish changes every ``min_interval_s`` (sooner after a command); until cancelled."""
        interval = self.config.mqtt.min_interval_s
        while True:
            sleeper = asyncio.ensure_future(self.clock.sleep(interval))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for fut in (sleeper, waker):
                    fut.cancel()
            self._wake.clear()
            if not self.connection.connected:
                continue
            try:
                await self._ha_birth_due()
                await self.publish_changes()
            except (MqttDownError, MqttTimeoutError) as err:
                log.warning("mqtt_publish_failed", device=self.topics.base, reason=str(err))

    # --- connection hooks ------------------------------------------------------------------------

    async def _on_connect(self) -> None:
        await self.connection.publish(self.topics.availability, ONLINE.encode(), retain=True)
        await self._publish_discovery()
        sent = await self.publish_changes(force=True)
        log.info("mqtt_published", device=self.topics.base, reason="connected", topics=sent)

    async def _publish_discovery(self) -> None:
        if self.discovery is None:
            return
        for topic, payload in self.discovery.messages().items():
            await self.connection.publish(topic, payload, retain=True)

    async def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        disc = self.discovery
        if disc is not None and topic == disc.birth_topic:
            if payload.strip() == b"online":
                await self._ha_birth(topic)
            return
        if disc is not None and disc.is_stale(topic):
            if payload:
                log.info("mqtt_discovery_removed", device=topic, reason="not configured any more")
                await self.connection.publish(topic, b"", retain=True)
            return
        result = self.commands.handle(topic, payload, retained)
        if result is None:
            return
        await self.connection.publish(self.topics.result, result.payload(), retain=False)
        self._wake.set()

    async def _ha_birth(self, topic: str) -> None:
        """Republish discovery and state for Home Assistant, at most once per
        :data:`HA_BIRTH_INTERVAL_S`: a birth within the interval is answered once, by the
        publisher, when the interval is over. (Each birth republished everything at once: 3 000
        births sent in one second kept the edge at half a core for minutes, ~150 publishes each.)
        """
        now = self.clock.monotonic()
        last = self._ha_birth_at
        if last is not None and now - last < HA_BIRTH_INTERVAL_S:
            self._ha_birth_pending = True
            return
        self._ha_birth_at = now
        self._ha_birth_pending = False
        log.info("mqtt_ha_online", device=topic, reason="Home Assistant started")
        await self._publish_discovery()
        await self.publish_changes(force=True)

    async def _ha_birth_due(self) -> None:
        """The publisher's part of :meth:`_ha_birth`: a deferred republish once it is due."""
        if not self._ha_birth_pending or self.discovery is None:
            return
        last = self._ha_birth_at
        if last is not None and self.clock.monotonic() - last < HA_BIRTH_INTERVAL_S:
            return
        await self._ha_birth(self.discovery.birth_topic)

    # --- lifecycle -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connection and publisher, until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.connection.run(), name="mqtt-connection")
            tg.create_task(self.run_publisher(), name="mqtt-publisher")


async def start_mqtt(rt: EdgeRuntime) -> None:
    """Edge service: the MQTT interface when ``[mqtt] url`` is set."""
    if rt.config.mqtt.url is None:
        return
    plug_settings = rt.shared.get(RUNTIME_KEY)
    iface = MqttInterface(
        rt.config,
        rt.clock,
        rt.controller.status,
        rt.flex,
        plug_settings if isinstance(plug_settings, PlugSettings) else None,
    )
    task = asyncio.create_task(iface.run(), name="mqtt-interface")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    rt.stack.push_async_callback(stop)
    rt.urls["mqtt"] = f"{rt.config.mqtt.url} {iface.topics.base}/#"
    rt.shared["mqtt_interface"] = iface
    log.info(
        "mqtt_started", device=rt.config.mqtt.url, reason="[mqtt] url set", base=iface.topics.base
    )


__all__ = ["MqttInterface", "start_mqtt"]
