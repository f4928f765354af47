"""The edge's side of the cloud link: an outbound MQTT connection (edges sit behind NAT).

:class:`EdgeCloudAgent` connects with the edge's own broker credentials and

* publishes ``online`` (retained) on every connect, with a last will ``offline`` (retained) for
  the broker to send when the connection dies, and ``offline`` itself on a clean stop;
* publishes each EVSE's status (limits, plugs, target, plug statuses) retained, on connect,
  after every command and every ``status_interval_s`` of the injected clock;
* executes ``set``/``clear`` commands against its local backend (the same
  :class:`~fuseguard.api.evse.EvseBackend` the edge's own API uses) and acknowledges each one to
  the replica that sent it, echoing the correlation id.

Messages carry ``seq`` stamps (see :mod:`fuseguard.cloud.protocol`) so the cloud keeps only the
newest state whatever the delivery order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Coroutine, Sequence
from typing import Any

import structlog
from pydantic import ValidationError

from fuseguard.api.evse import EvseBackend
from fuseguard.api.evse_models import EvseInfo, PlugStatusOut
from fuseguard.api.services import EVSE_BACKEND, EVSE_INFOS
from fuseguard.cloud.link import LastWill, LinkMessage, MqttLink
from fuseguard.cloud.protocol import (
    DEFAULT_PREFIX,
    AckMessage,
    CommandMessage,
    EdgeState,
    EvseStatusMessage,
    PlugInfoWire,
    TargetWire,
    Topics,
)
from fuseguard.control.ports import DeviceError
from fuseguard.control.targets import Target
from fuseguard.model.clock import Clock
from fuseguard.runtime import EdgeRuntime

log = structlog.get_logger(__name__)

_SEEN_COMMANDS = 1024


def _wire(target: Target | None) -> TargetWire | None:
    return (
        None
        if target is None
        else TargetWire(current=target.current_a, valid_until=target.valid_until)
    )


class EdgeCloudAgent:
    """Connects one edge to the cloud over MQTT (module docstring); ``run()`` until cancelled."""

    def __init__(
        self,
        broker_url: str,
        edge_device_id: str,
        username: str | None,
        password: str | None,
        backend: EvseBackend,
        evses: Sequence[EvseInfo],
        clock: Clock,
        *,
        status_interval_s: float = 10.0,
        topic_prefix: str = DEFAULT_PREFIX,
        keepalive_s: int = 30,
    ) -> None:
        self.edge_device_id = edge_device_id
        self.backend = backend
        self.evses = {e.evse_uuid: e for e in evses}
        self.clock = clock
        self.status_interval_s = status_interval_s
        self.topics = Topics(topic_prefix)
        self._last_seq = 0
        self._session = 0
        self._seen: OrderedDict[str, AckMessage | None] = OrderedDict()
        self._tasks: set[asyncio.Task[object]] = set()
        self.link = MqttLink(
            broker_url=broker_url,
            client_id=f"fuseguard-edge-{edge_device_id}",
            on_message=self._on_message,
            username=username or None,
            password=password or None,
            will_factory=self._will,
            on_connect=self._on_connect,
            keepalive_s=keepalive_s,
        )

    # --- stamps ----------------------------------------------------------------------------------

    def next_seq(self) -> int:
        """Strictly increasing, and increasing across restarts (clock in µs)."""
        now_us = int(self.clock.now().timestamp() * 1_000_000)
        self._last_seq = max(self._last_seq + 1, now_us)
        return self._last_seq

    def _will(self) -> LastWill:
        self._session = self.next_seq()
        payload = EdgeState(state="offline", session=self._session).to_bytes()
        return LastWill(self.topics.state(self.edge_device_id), payload)

    # --- lifecycle -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the link up and publish status periodically; on cancel say ``offline``."""
        link_task = asyncio.create_task(self.link.run(), name=f"edge-agent-{self.edge_device_id}")
        try:
            while True:
                await self.clock.sleep(self.status_interval_s)
                if self.link.connected:
                    await self.publish_all_statuses()
        finally:
            await self._say_offline()
            link_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await link_task
            for task in list(self._tasks):
                task.cancel()

    async def wait_connected(self, timeout_s: float = 10.0) -> None:
        """Wait until the agent is connected and has announced itself."""
        await self.link.wait_connected(timeout_s)

    async def _say_offline(self) -> None:
        if not self.link.connected:
            return
        payload = EdgeState(state="offline", session=self._session).to_bytes()
        with contextlib.suppress(DeviceError, TimeoutError):
            async with asyncio.timeout(2.0):
                await self.link.publish(
                    self.topics.state(self.edge_device_id), payload, qos=1, retain=True
                )
        log.info("edge_agent_offline", edge=self.edge_device_id, reason="agent stopped")

    async def _on_connect(self) -> None:
        await self.link.subscribe(self.topics.command(self.edge_device_id))
        payload = EdgeState(state="online", session=self._session).to_bytes()
        await self.link.publish(self.topics.state(self.edge_device_id), payload, retain=True)
        log.info("edge_agent_online", edge=self.edge_device_id, reason="connected to broker")
        self._spawn(self.publish_all_statuses())

    # --- status ----------------------------------------------------------------------------------

    async def status_message(self, evse_uuid: str) -> EvseStatusMessage:
        """The retained status message of one EVSE as of now."""
        info = self.evses[evse_uuid]
        target = await self.backend.get_target(self.edge_device_id, evse_uuid)
        records = await self.backend.status(self.edge_device_id, evse_uuid)
        return EvseStatusMessage(
            seq=self.next_seq(),
            evse_uuid=evse_uuid,
            min_current_a=info.min_current_a,
            max_current_a=info.max_current_a,
            plugs=[PlugInfoWire(uuid=u, label=label) for u, label in info.plugs],
            target=_wire(target),
            statuses=[PlugStatusOut.of(r) for r in records],
        )

    async def publish_status(self, evse_uuid: str) -> None:
        """Publish one EVSE's status (retained)."""
        msg = await self.status_message(evse_uuid)
        try:
            await self.link.publish(
                self.topics.status(self.edge_device_id, evse_uuid), msg.to_bytes(), retain=True
            )
        except DeviceError as err:
            log.warning(
                "edge_status_not_published",
                edge=self.edge_device_id,
                evse=evse_uuid,
                reason=str(err),
            )

    async def publish_all_statuses(self) -> None:
        """Publish every EVSE's status."""
        for evse_uuid in self.evses:
            await self.publish_status(evse_uuid)

    # --- commands --------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_message(self, message: LinkMessage) -> None:
        parsed = self.topics.parse(message.topic)
        if parsed is None or parsed[0] != self.edge_device_id or parsed[1] != "cmd":
            return
        try:
            command = CommandMessage.model_validate_json(message.payload)
        except ValidationError as err:
            log.warning(
                "edge_command_invalid", edge=self.edge_device_id, reason=str(err).splitlines()[0]
            )
            return
        self._spawn(self.handle_command(command))

    async def handle_command(self, command: CommandMessage) -> AckMessage:
        """Execute one command (once per correlation id) and acknowledge it."""
        ack = self._seen.get(command.id)
        if ack is None:
            if command.id in self._seen:  # being executed right now (duplicate delivery)
                return AckMessage(
                    id=command.id,
                    seq=0,
                    evse_uuid=command.evse_uuid,
                    state="rejected",
                    reason="duplicate",
                )
            self._seen[command.id] = None
            while len(self._seen) > _SEEN_COMMANDS:
                self._seen.popitem(last=False)
            ack = await self._execute(command)
            self._seen[command.id] = ack
        expected_prefix = self.topics.edge_root(self.edge_device_id) + "/ack/"
        if not command.reply_to.startswith(expected_prefix):
            log.warning(
                "edge_command_bad_reply_to",
                edge=self.edge_device_id,
                id=command.id,
                reason=f"reply_to {command.reply_to!r} is outside this edge's topics",
            )
            return ack
        try:
            await self.link.publish(command.reply_to, ack.to_bytes(), qos=1)
        except DeviceError as err:
            log.warning(
                "edge_ack_not_sent", edge=self.edge_device_id, id=command.id, reason=str(err)
            )
        if ack.state == "received":
            await self.publish_status(command.evse_uuid)
        return ack

    async def _execute(self, command: CommandMessage) -> AckMessage:
        edge, evse_uuid = self.edge_device_id, command.evse_uuid

        def reject(reason: str) -> AckMessage:
            log.warning(
                "edge_command_rejected",
                edge=edge,
                evse=evse_uuid,
                id=command.id,
                op=command.op,
                reason=reason,
            )
            return AckMessage(
                id=command.id,
                seq=self.next_seq(),
                evse_uuid=evse_uuid,
                state="rejected",
                reason=reason,
            )

        if evse_uuid not in self.evses:
            return reject("unknown EVSE")
        try:
            if command.op == "set":
                if command.current is None or command.duration is None:
                    return reject("set needs current and duration")
                state = await self.backend.set_target(
                    edge, evse_uuid, command.current, command.duration
                )
                if state != "received":
                    return reject("local backend rejected the target")
                target = await self.backend.get_target(edge, evse_uuid)
                log.info(
                    "edge_command_done",
                    edge=edge,
                    evse=evse_uuid,
                    id=command.id,
                    op="set",
                    current_a=command.current,
                    duration_s=command.duration,
                    reason="cloud command",
                )
                return AckMessage(
                    id=command.id,
                    seq=self.next_seq(),
                    evse_uuid=evse_uuid,
                    state="received",
                    target=_wire(target),
                )
            previous = await self.backend.clear_target(edge, evse_uuid)
            log.info(
                "edge_command_done",
                edge=edge,
                evse=evse_uuid,
                id=command.id,
                op="clear",
                reason="cloud command",
            )
            return AckMessage(
                id=command.id,
                seq=self.next_seq(),
                evse_uuid=evse_uuid,
                state="received",
                previous=_wire(previous),
            )
        except (ValueError, DeviceError) as err:
            return reject(f"{type(err).__name__}: {err}")


async def start_cloud_agent(rt: EdgeRuntime) -> None:
    """Edge service: the outbound link to a fuseguard cloud (after the EVSE API started)."""
    cc = rt.config.cloud
    backend = rt.shared.get(EVSE_BACKEND)
    if cc.broker is None or backend is None:
        return
    evses = rt.shared[EVSE_INFOS]
    agent = EdgeCloudAgent(
        cc.broker,
        rt.config.site.edge_id,
        cc.username,
        cc.password.get_secret_value(),
        backend,
        list(evses.values()),
        rt.clock,
        status_interval_s=cc.status_interval_s,
    )
    task = asyncio.create_task(agent.run(), name="cloud-agent")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    rt.stack.push_async_callback(stop)
