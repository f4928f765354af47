"""The edge's side of the cloud link: an outbound MQTT connection (edges sit behind NAT).

:class:`EdgeCloudAgent` connects with the edge's own broker credentials and

* publishes ``online`` (retained) on every connect and again every ``state_interval_s`` while
  connected (the cloud commits asynchronously and may lose the last writes: ``docs/cloud.md``),
  with a last will ``offline`` (retained) for the broker to send when the connection dies, and
  ``offline`` itself on a clean stop;
* publishes each EVSE's status (limits, plugs, target, plug statuses) retained, on connect,
  after every command and every ``status_interval_s`` of the injected clock;
* publishes live snapshots (the live page's data) while a cloud viewer asks for them
  (:mod:`fuseguard.cloud.edge_live`; ``op: live`` on the command topic);
* executes ``set``/``clear`` commands against its local backend (the same
  :class:`~fuseguard.api.evse.EvseBackend` the edge's own API uses) and acknowledges each one to
  the replica that sent it, echoing the correlation id.

A command is checked exactly as the edge's own EVSE API checks a POST: ``current`` 0 or within
the EVSE's ``[min_current_a, max_current_a]``, ``duration`` within ``1..max_duration_s``;
anything else is acknowledged ``rejected`` with the reason and never reaches the targets (so no
persisted target can be out of range). A command that fails in any other way is rejected too; no
message ends the agent.

Client ids are not a secret: one edge could connect with another's client id and take its
session over. The broker closes that door (``use_username_as_clientid true`` on the edges'
listener, as :func:`fuseguard.cloud.acl.mosquitto_conf` writes it; ``docs/cloud.md``).

Messages carry ``seq`` stamps (see :mod:`fuseguard.cloud.protocol`) so the cloud keeps only the
newest state whatever the delivery order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import structlog
from pydantic import ValidationError

from fuseguard.api.evse import EvseBackend
from fuseguard.api.evse_models import DEFAULT_MAX_DURATION_S, EvseInfo, PlugStatusOut
from fuseguard.api.services import EVSE_BACKEND, EVSE_INFOS
from fuseguard.api.web.service import live_view_source
from fuseguard.cloud.edge_live import LivePublisher
from fuseguard.cloud.link import LastWill, LinkMessage, MqttLink, TlsSettings, supervised
from fuseguard.cloud.protocol import (
    DEFAULT_PREFIX,
    MAX_PAYLOAD_BYTES,
    AckMessage,
    CommandMessage,
    EdgeCommand,
    EdgeState,
    EvseStatusMessage,
    LiveRequest,
    PlugInfoWire,
    PlugStatusWire,
    TargetWire,
    Topics,
    describe_error,
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
        state_interval_s: float = 300.0,
        topic_prefix: str = DEFAULT_PREFIX,
        keepalive_s: int = 30,
        max_duration_s: int = DEFAULT_MAX_DURATION_S,
        tls: TlsSettings | None = None,
        live_view: Callable[[], dict[str, Any]] | None = None,
        site_name: str = "",
    ) -> None:
        self.edge_device_id = edge_device_id
        self.max_duration_s = max_duration_s
        self.backend = backend
        self.evses = {e.evse_uuid: e for e in evses}
        self.clock = clock
        self.status_interval_s = status_interval_s
        self.state_interval_s = state_interval_s
        self._state_at: float | None = None  # clock time of the last ``online`` published
        self._status_at = float("-inf")  # clock time of the last periodic statuses
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
            tls=tls,
        )
        self.live: LivePublisher | None = None
        if live_view is not None:
            self.live = LivePublisher(
                self.link,
                self.topics.live(edge_device_id),
                live_view,
                clock,
                self.next_seq,
                edge_device_id=edge_device_id,
                site_name=site_name,
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
        name = f"edge-agent-{self.edge_device_id}"
        link_task = asyncio.create_task(supervised(name, self.link.run), name=name)
        if self.live is not None:
            self._spawn(supervised(f"{name}-live", self.live.run))
        try:
            while True:
                await self.clock.sleep(min(self.status_interval_s, self.state_interval_s))
                if self.link.connected:
                    await self._refresh()
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
        await self.publish_online()
        log.info("edge_agent_online", edge=self.edge_device_id, reason="connected to broker")
        self._spawn(self.publish_all_statuses())

    async def publish_online(self) -> None:
        """Publish ``online`` (retained) for this connection's session."""
        self._state_at = self.clock.monotonic()
        payload = EdgeState(state="online", session=self._session).to_bytes()
        await self.link.publish(self.topics.state(self.edge_device_id), payload, retain=True)

    async def _refresh(self) -> None:
        """The periodic part: every status when due, ``online`` again when due."""
        now = self.clock.monotonic()
        if now - self._status_at >= self.status_interval_s:
            self._status_at = now
            await self.publish_all_statuses()
        if self._state_at is None or now - self._state_at >= self.state_interval_s:
            try:
                await self.publish_online()
            except DeviceError as err:  # the link is down: the next connect says online
                log.warning("edge_state_not_published", edge=self.edge_device_id, reason=str(err))

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
            statuses=self._wire_statuses(evse_uuid, [PlugStatusOut.of(r) for r in records]),
        )

    def _wire_statuses(self, evse_uuid: str, out: list[PlugStatusOut]) -> list[PlugStatusWire]:
        """The statuses the cloud accepts; one it would refuse (e.g. NaN) is left out, logged."""
        result = []
        for status in out:
            try:
                result.append(PlugStatusWire.model_validate(status.model_dump()))
            except ValueError as err:
                log.warning(
                    "edge_status_not_sent",
                    edge=self.edge_device_id,
                    evse=evse_uuid,
                    plug=status.plug_uuid,
                    reason=describe_error(err),
                )
        return result

    async def publish_status(self, evse_uuid: str) -> None:
        """Publish one EVSE's status (retained); a failure is logged, never raised."""
        try:
            msg = await self.status_message(evse_uuid)
            await self.link.publish(
                self.topics.status(self.edge_device_id, evse_uuid), msg.to_bytes(), retain=True
            )
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the status loop must go on
            log.warning(
                "edge_status_not_published",
                edge=self.edge_device_id,
                evse=evse_uuid,
                reason=describe_error(err),
            )

    async def publish_all_statuses(self) -> None:
        """Publish every EVSE's status."""
        for evse_uuid in self.evses:
            await self.publish_status(evse_uuid)

    # --- commands --------------------------------------------------------------------------------

    def _own_ack_topic(self, topic: str) -> bool:
        """True for ``{prefix}/edges/{this edge}/ack/{replica}`` without wildcards."""
        parsed = self.topics.parse(topic)
        return (
            parsed is not None
            and parsed[:2] == (self.edge_device_id, "ack")
            and not any(c in topic for c in "+#\x00")
        )

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error(
                "edge_agent_task_failed",
                edge=self.edge_device_id,
                reason=f"{type(exc).__name__}: {str(exc)[:300]}",
            )

    async def _on_message(self, message: LinkMessage) -> None:
        parsed = self.topics.parse(message.topic)
        if parsed is None or parsed[0] != self.edge_device_id or parsed[1] != "cmd":
            return
        try:
            if len(message.payload) > MAX_PAYLOAD_BYTES:
                msg = f"command of {len(message.payload)} bytes"
                raise ValueError(msg)
            command = EdgeCommand.validate_json(message.payload)
        except (ValidationError, ValueError) as err:
            log.warning(
                "edge_command_invalid", edge=self.edge_device_id, reason=describe_error(err)
            )
            return
        if isinstance(command, LiveRequest):
            if self.live is not None:
                self.live.requested(command.for_s)
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
            try:
                ack = await self._execute(command)
            except asyncio.CancelledError:
                self._seen.pop(command.id, None)
                raise
            self._seen[command.id] = ack
        if not self._own_ack_topic(command.reply_to):
            log.warning(
                "edge_command_bad_reply_to",
                edge=self.edge_device_id,
                id=command.id,
                reason=f"reply_to {command.reply_to[:200]!r} is not an ack topic of this edge",
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

        info = self.evses.get(evse_uuid)
        if info is None:
            return reject("unknown EVSE")
        try:
            if command.op == "set":
                problem = self.check_set(info, command.current, command.duration)
                if problem is not None:
                    return reject(problem)
                current_a, duration_s = command.current or 0, command.duration or 0
                state = await self.backend.set_target(edge, evse_uuid, current_a, duration_s)
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
            return reject(f"{type(err).__name__}: {err}"[:300])
        except Exception as err:  # a command never ends the agent
            log.exception("edge_command_failed", edge=edge, evse=evse_uuid, id=command.id)
            return reject(f"internal error: {type(err).__name__}")

    def check_set(self, info: EvseInfo, current: int | None, duration: int | None) -> str | None:
        """Why a ``set`` is refused (as the edge's own EVSE API refuses a POST), or None."""
        if current is None or duration is None:
            return "set needs current and duration"
        if current != 0 and not info.min_current_a <= current <= info.max_current_a:
            return (
                f"current must be 0 or within [{info.min_current_a}, {info.max_current_a}] A "
                f"for this EVSE, got {current}"
            )
        if not 1 <= duration <= self.max_duration_s:
            return f"duration must be within [1, {self.max_duration_s}] s, got {duration}"
        return None


def cloud_agent(rt: EdgeRuntime) -> EdgeCloudAgent | None:
    """The agent the site config asks for (``[cloud]``), or None when there is no cloud link."""
    cc = rt.config.cloud
    backend = rt.shared.get(EVSE_BACKEND)
    if cc.broker is None or backend is None:
        return None
    evses = rt.shared[EVSE_INFOS]
    return EdgeCloudAgent(
        cc.broker,
        rt.config.site.edge_id,
        cc.username,
        cc.password.get_secret_value(),
        backend,
        list(evses.values()),
        rt.clock,
        status_interval_s=cc.status_interval_s,
        state_interval_s=cc.state_interval_s,
        max_duration_s=rt.config.api.evse.max_duration_s,
        tls=TlsSettings(cc.ca_file, cc.cert_file, cc.key_file),
        live_view=live_view_source(rt),
        site_name=rt.config.site.name or rt.config.site.edge_id,
    )


async def start_cloud_agent(rt: EdgeRuntime) -> None:
    """Edge service: the outbound link to a fuseguard cloud (after the EVSE API started)."""
    agent = cloud_agent(rt)
    if agent is None:
        return
    task = asyncio.create_task(agent.run(), name="cloud-agent")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    rt.stack.push_async_callback(stop)
