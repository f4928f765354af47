"""The cloud's :class:`~fuseguard.api.evse.EvseBackend`: state in the database, commands over MQTT.

* POST/DELETE: publish a command with a fresh correlation id to the edge, wait for the edge's
  ack (``ack_timeout_s``, default 5 s), write what the edge acknowledged to the database, answer.
  An edge that is offline (per its retained state / last will), goes offline while we wait, or
  does not ack in time gets ``rejected`` (POST) or :class:`EdgeUnavailableError` (DELETE).
* GET and status read the database only; retained status messages and acks keep it in sync.
  While an edge is offline its plugs report ``cloud_offline`` (last known measurements kept).
* Whether an edge is online is written to the database and also kept in memory (with the same
  stamp rule), from the retained state messages every replica receives; the database answers
  while the link is down or right after a reconnect (:meth:`CloudEvseBackend.edge_online`).

Several replicas may run against one database and one broker: each subscribes to every edge's
state and status (idempotent, stamp-guarded upserts) and to the acks addressed to itself only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from dataclasses import dataclass
from typing import Literal

import structlog

from fuseguard.api.evse_models import EvseInfo, PlugStatusRecord
from fuseguard.cloud.link import Link, LinkMessage
from fuseguard.cloud.metrics import CommandMetrics, RejectReason
from fuseguard.cloud.protocol import (
    MAX_EDGE_ID_LEN,
    MAX_PAYLOAD_BYTES,
    AckMessage,
    CommandMessage,
    EdgeState,
    EvseStatusMessage,
    TargetWire,
    Topics,
    describe_error,
)
from fuseguard.cloud.store import CloudStore, StoredTarget, TargetWrite
from fuseguard.cloud.writer import CloudWriter
from fuseguard.control.ports import DeviceConnectionError, DeviceError
from fuseguard.control.targets import Target
from fuseguard.model.clock import Clock
from fuseguard.model.status import PlugStatus

log = structlog.get_logger(__name__)


class EdgeUnavailableError(DeviceConnectionError):
    """The edge is offline or did not acknowledge a command in time."""


class _EdgeWentOfflineError(Exception):
    pass


@dataclass(slots=True)
class _Pending:
    edge_device_id: str
    future: asyncio.Future[AckMessage]


def _target(wire: TargetWire | None) -> Target | None:
    return None if wire is None else Target(wire.current, wire.valid_until)


class CloudEvseBackend:
    """EVSE backend of one cloud replica (see module docstring)."""

    def __init__(
        self,
        store: CloudStore,
        topics: Topics,
        clock: Clock,
        *,
        replica_id: str,
        ack_timeout_s: float = 5.0,
        status_batch_max: int = 500,
        status_linger_s: float = 0.0,
        metrics: CommandMetrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.topics = topics
        self.clock = clock
        self.replica_id = replica_id
        self.ack_timeout_s = ack_timeout_s
        self._status_batch_max = status_batch_max
        self._link: Link | None = None
        self._pending: dict[str, _Pending] = {}
        self._writer = CloudWriter(store, batch_max=status_batch_max, linger_s=status_linger_s)
        self._presence: dict[str, tuple[int, int]] = {}
        self._evse_info: dict[tuple[str, str], tuple[int, EvseInfo]] = {}

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self, link: Link) -> None:
        """Use ``link`` (its ``on_message`` must be :meth:`handle_message`) and subscribe."""
        self._link = link
        self._writer.start()
        await link.subscribe(self.topics.all_states())
        await link.subscribe(self.topics.all_statuses())
        await link.subscribe(self.topics.all_acks(self.replica_id))

    async def stop(self) -> None:
        """Flush pending status writes and stop the writer."""
        await self._writer.stop()
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(_EdgeWentOfflineError())
        self._pending.clear()

    async def flush(self) -> None:
        """Wait until every received status message (and acknowledged target) is written."""
        await self._writer.flush()

    # --- incoming messages -----------------------------------------------------------------------

    async def handle_message(self, message: LinkMessage) -> None:
        """Dispatch one MQTT message (acks resolve waiters at once; statuses are batched).

        A message that does not validate, or whose handling fails in any way, is logged with
        the edge and the reason and dropped: one edge's message never ends the link.
        """
        parsed = self.topics.parse(message.topic)
        if parsed is None:
            return
        edge_device_id, kind, rest = parsed
        try:
            if len(edge_device_id) > MAX_EDGE_ID_LEN:
                msg = f"edge id longer than {MAX_EDGE_ID_LEN} characters"
                raise ValueError(msg)
            if len(message.payload) > MAX_PAYLOAD_BYTES:
                msg = f"payload of {len(message.payload)} bytes (limit {MAX_PAYLOAD_BYTES})"
                raise ValueError(msg)
            await self._dispatch(edge_device_id, kind, rest, message.payload)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # hostile input: log and drop, whatever it was
            log.warning(
                "edge_message_dropped",
                edge=edge_device_id[:MAX_EDGE_ID_LEN],
                topic=message.topic[:300],
                reason=describe_error(err),
            )

    async def _dispatch(
        self, edge_device_id: str, kind: str, rest: tuple[str, ...], payload: bytes
    ) -> None:
        if kind == "ack":
            self._on_ack(edge_device_id, AckMessage.model_validate_json(payload))
        elif kind == "status":
            if not payload:
                return  # a cleared retained message
            status = EvseStatusMessage.model_validate_json(payload)
            if status.evse_uuid != rest[0]:
                log.warning(
                    "status_topic_mismatch",
                    edge=edge_device_id,
                    evse=status.evse_uuid,
                    reason=f"published on the topic of EVSE {rest[0][:64]}",
                )
                return
            self._remember_evse(edge_device_id, status)
            self._writer.put_status(edge_device_id, status)
        elif kind == "state":
            if not payload:
                return
            self._on_state(edge_device_id, EdgeState.model_validate_json(payload))

    def _on_ack(self, edge_device_id: str, ack: AckMessage) -> None:
        pending = self._pending.get(ack.id)
        if pending is None:
            log.debug("ack_unexpected", edge=edge_device_id, id=ack.id, reason="no waiter (late)")
            return
        if pending.edge_device_id != edge_device_id:
            log.warning(
                "ack_wrong_edge",
                edge=edge_device_id,
                expected=pending.edge_device_id,
                reason="ack for another edge's command",
            )
            return
        if not pending.future.done():
            pending.future.set_result(ack)

    async def on_link_connected(self) -> None:
        """The link (re)connected: forget presence learnt before (it may have missed messages).

        Until the retained state messages arrive again, presence is read from the database.
        """
        self._presence.clear()
        self._evse_info.clear()

    def _remember_state(self, edge_device_id: str, state: EdgeState) -> None:
        """Apply ``state`` to the in-memory presence with the store's stamp rule."""
        stamp = (state.session, 1 if state.state == "offline" else 0)
        old = self._presence.get(edge_device_id)
        if old is None or old < stamp:
            self._presence[edge_device_id] = stamp

    def _remember_evse(self, edge_device_id: str, status: EvseStatusMessage) -> None:
        """Keep the EVSE's limits and plugs from its newest status message in memory."""
        key = (edge_device_id, status.evse_uuid)
        old = self._evse_info.get(key)
        if old is not None and old[0] >= status.seq:
            return
        info = EvseInfo(
            evse_uuid=status.evse_uuid,
            min_current_a=status.min_current_a,
            max_current_a=status.max_current_a,
            plugs=tuple((p.uuid, p.label) for p in status.plugs),
        )
        self._evse_info[key] = (status.seq, info)

    def _cache_usable(self) -> bool:
        link = self._link
        return link is not None and link.connected

    async def edge_online(self, edge_device_id: str) -> bool | None:
        """Online/offline per the state messages this replica received; None if never seen.

        Every replica subscribes to every edge's retained state, so the in-memory flag follows
        the same messages (and the same stamp rule) as the database. While the link is down, or
        before an edge's state arrived after a (re)connect, the database answers instead.
        """
        if self._cache_usable():
            stamp = self._presence.get(edge_device_id)
            if stamp is not None:
                return stamp[1] == 0
        return await self.store.edge_online(edge_device_id)

    def _on_state(self, edge_device_id: str, state: EdgeState) -> None:
        self._remember_state(edge_device_id, state)
        if state.state == "offline":
            for pending in self._pending.values():
                if pending.edge_device_id == edge_device_id and not pending.future.done():
                    pending.future.set_exception(_EdgeWentOfflineError())
        self._writer.put_state(edge_device_id, state)  # batched with the statuses
        log.info(
            "edge_state",
            edge=edge_device_id,
            state=state.state,
            session=state.session,
            reason="state message",
        )

    async def _write_target(
        self, edge_device_id: str, evse_uuid: str, target: StoredTarget | None, seq: int
    ) -> None:
        """Queue an acknowledged target for the writer and wait until it is committed."""
        await self._writer.write_target(TargetWrite(edge_device_id, evse_uuid, target, seq))

    # --- commands --------------------------------------------------------------------------------

    async def _command(
        self,
        edge_device_id: str,
        evse_uuid: str,
        op: Literal["set", "clear"],
        current_a: int | None = None,
        duration_s: int | None = None,
    ) -> AckMessage | None:
        """Send one command and wait for its ack; None when it cannot be delivered."""
        link = self._link
        if link is None:
            log.warning("command_not_sent", edge=edge_device_id, evse=evse_uuid, reason="no link")
            return None
        online = await self.edge_online(edge_device_id)
        if not online:
            log.info(
                "command_rejected",
                edge=edge_device_id,
                evse=evse_uuid,
                op=op,
                reason="edge offline" if online is False else "edge never connected",
            )
            if self.metrics is not None:
                self.metrics.reject(op, "edge_offline")
            return None
        correlation_id = uuid.uuid4().hex
        command = CommandMessage(
            id=correlation_id,
            reply_to=self.topics.ack(edge_device_id, self.replica_id),
            op=op,
            evse_uuid=evse_uuid,
            current=current_a,
            duration=duration_s,
        )
        future: asyncio.Future[AckMessage] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = _Pending(edge_device_id, future)
        kind: RejectReason | None = None
        try:
            async with asyncio.timeout(self.ack_timeout_s):
                await link.publish(self.topics.command(edge_device_id), command.to_bytes(), qos=1)
                if self.metrics is not None:
                    self.metrics.sent.labels(op=op).inc()
                ack = await future
            if self.metrics is not None:
                self.metrics.acked.labels(op=op).inc()
            return ack
        except TimeoutError:
            reason = f"no ack within {self.ack_timeout_s} s"
        except _EdgeWentOfflineError:
            reason = "edge went offline while waiting for the ack"
            kind = "edge_went_offline"
        except DeviceError as err:
            reason = f"broker link: {err}"
            kind = "link_error"
        finally:
            self._pending.pop(correlation_id, None)
        if self.metrics is not None:
            if kind is None:
                self.metrics.timed_out.labels(op=op).inc()
            else:
                self.metrics.reject(op, kind)
        log.warning(
            "command_rejected",
            edge=edge_device_id,
            evse=evse_uuid,
            op=op,
            id=correlation_id,
            reason=reason,
        )
        return None

    # --- EvseBackend -----------------------------------------------------------------------------

    async def evse(self, edge_device_id: str, evse_uuid: str) -> EvseInfo | None:
        """The EVSE as its edge last described it; None when unknown.

        Limits and plugs come from the newest status message this replica received (every
        replica receives them all), else from the database.
        """
        if self._cache_usable():
            cached = self._evse_info.get((edge_device_id, evse_uuid))
            if cached is not None:
                return cached[1]
        row = await self.store.evse(edge_device_id, evse_uuid)
        if row is None:
            return None
        return EvseInfo(
            evse_uuid=row.evse_uuid,
            min_current_a=row.min_current_a,
            max_current_a=row.max_current_a,
            plugs=tuple((p.uuid, p.label) for p in row.plugs),
        )

    async def set_target(
        self, edge_device_id: str, evse_uuid: str, current_a: int, duration_s: int
    ) -> Literal["received", "rejected"]:
        """Deliver a target to the edge; ``received`` only after the edge acknowledged it."""
        started = time.perf_counter()
        ack = await self._command(edge_device_id, evse_uuid, "set", current_a, duration_s)
        if self.metrics is not None:
            self.metrics.set_duration.observe(time.perf_counter() - started)
        if ack is None:
            return "rejected"
        if ack.state != "received" or ack.target is None:
            if self.metrics is not None:
                self.metrics.reject("set", "edge_refused")
            log.info(
                "target_rejected_by_edge",
                edge=edge_device_id,
                evse=evse_uuid,
                reason=ack.reason or "edge refused",
            )
            return "rejected"
        await self._write_target(
            edge_device_id,
            evse_uuid,
            StoredTarget(ack.target.current, ack.target.valid_until),
            ack.seq,
        )
        return "received"

    async def get_target(self, edge_device_id: str, evse_uuid: str) -> Target | None:
        """The target in force per the database (None once expired on this replica's clock)."""
        target = await self.store.target(edge_device_id, evse_uuid)
        if target is None or target.valid_until <= self.clock.now():
            return None
        return Target(target.current_a, target.valid_until)

    async def clear_target(self, edge_device_id: str, evse_uuid: str) -> Target | None:
        """Clear the target on the edge; returns the one valid before.

        Raises :class:`EdgeUnavailableError` when the edge cannot confirm it.
        """
        ack = await self._command(edge_device_id, evse_uuid, "clear")
        if ack is None or ack.state != "received":
            msg = f"edge {edge_device_id} could not clear the target of EVSE {evse_uuid}"
            raise EdgeUnavailableError(msg)
        await self._write_target(edge_device_id, evse_uuid, None, ack.seq)
        previous = _target(ack.previous)
        if previous is not None and previous.valid_until <= self.clock.now():
            return None
        return previous

    async def status(self, edge_device_id: str, evse_uuid: str) -> list[PlugStatusRecord]:
        """Last reported plug statuses; ``cloud_offline`` while the edge is offline."""
        row = await self.store.evse(edge_device_id, evse_uuid)
        if row is None:
            return []
        online = await self.edge_online(edge_device_id)
        records = [s.to_record() for s in row.statuses]
        reported = {r.plug_uuid for r in records}
        now = self.clock.now()
        records += [
            PlugStatusRecord.unknown(now, evse_uuid, plug.uuid, plug.label)
            for plug in row.plugs
            if plug.uuid not in reported
        ]
        if not online:
            records = [dataclasses.replace(r, status=PlugStatus.CLOUD_OFFLINE) for r in records]
        return records
