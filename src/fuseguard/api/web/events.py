"""The dashboard's event log: audited changes and the faults/fallbacks seen in the status stream.

Request handlers ``await`` :meth:`EventLog.record` (a change is audited before it is answered).
The controller's per-cycle listener must never wait for a database, so :class:`StatusWatcher`
only compares the cycle with the previous one and queues the transitions (a plug goes into
fault or offline and back, the meter-loss or keep-alive fallback starts or ends); one writer task
stores them. The queue is bounded: in a storm the oldest news is dropped, and that is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import structlog

from fuseguard.control.types import ControllerStatus
from fuseguard.model.clock import Clock
from fuseguard.store.web import WebEvent, WebEventRepository

log = structlog.get_logger(__name__)

QUEUE_MAX = 1000


class EventKind:
    """The kinds of event the log holds (the ``kind`` column)."""

    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    LIMIT = "limit"
    TARGET = "target"
    PLUG_SETTING = "plug_setting"
    FAULT = "fault"
    FALLBACK = "fallback"

    ALL = (LOGIN, LOGIN_FAILED, LOGOUT, LIMIT, TARGET, PLUG_SETTING, FAULT, FALLBACK)


@dataclass(frozen=True, slots=True)
class _Pending:
    kind: str
    source: str
    message: str


class EventLog:
    """Writes events with the clock's time; status transitions through a bounded queue."""

    def __init__(self, repo: WebEventRepository, clock: Clock) -> None:
        self._repo = repo
        self._clock = clock
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(QUEUE_MAX)
        self._task: asyncio.Task[None] | None = None

    async def record(self, kind: str, source: str, message: str) -> None:
        """Store one event now (errors are logged, never raised into the request)."""
        try:
            await self._repo.add(self._clock.now(), kind, source, message)
        except Exception as exc:  # the audit log must not break the change it audits
            log.exception("web_event_write_failed", kind=kind, reason=repr(exc))

    def enqueue(self, kind: str, source: str, message: str) -> None:
        """Queue an event for the writer task (no waiting; drops the oldest when full)."""
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
            log.warning("web_event_dropped", kind=kind, reason="event queue full")
        self._queue.put_nowait(_Pending(kind, source, message))

    async def recent(self, limit: int = 200, kind: str | None = None) -> list[WebEvent]:
        """The newest events first."""
        return await self._repo.recent(limit, kind)

    def start(self) -> None:
        """Start the writer task."""
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="web-events")

    async def close(self) -> None:
        """Write what is queued, then stop."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            await self.record(item.kind, item.source, item.message)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _drain(self) -> None:
        while True:
            item = await self._queue.get()
            await self.record(item.kind, item.source, item.message)


class StatusWatcher:
    """Controller listener: turns fault/fallback transitions into events."""

    def __init__(self, events: EventLog) -> None:
        self._events = events
        self._faults: dict[str, str | None] = {}
        self._meter_fallback = False
        self._flex_fallback = False
        self._first = True

    def on_status(self, st: ControllerStatus) -> None:
        """Compare with the previous cycle (never raises into the loop)."""
        try:
            self._observe(st)
        except Exception as exc:  # a listener must not break control
            log.warning("web_status_watch_failed", reason=repr(exc))

    def _observe(self, st: ControllerStatus) -> None:
        emit = self._events.enqueue
        if st.meter_fallback != self._meter_fallback:
            self._meter_fallback = st.meter_fallback
            emit(
                EventKind.FALLBACK,
                "meter",
                "meter-loss fallback started: meter stale or gone"
                if st.meter_fallback
                else "meter-loss fallback ended: meter readings are back",
            )
        if st.flex_fallback != self._flex_fallback:
            self._flex_fallback = st.flex_fallback
            emit(
                EventKind.FALLBACK,
                "ems",
                "keep-alive fallback started: the EMS went silent"
                if st.flex_fallback
                else "keep-alive fallback ended: the EMS is back",
            )
        for plug in st.plugs:
            fault = _plug_fault(plug.online, plug.error, plug.status.value)
            before = self._faults.get(plug.id)
            self._faults[plug.id] = fault
            if fault == before or (self._first and fault is None):
                continue
            if fault is None:
                emit(EventKind.FAULT, plug.id, "fault cleared: plug back to normal")
            else:
                emit(EventKind.FAULT, plug.id, fault)
        self._first = False


def _plug_fault(online: bool, error: str | None, status: str) -> str | None:
    if not online:
        return "charger not reachable"
    if error:
        return f"fault: {error}"
    if status == "error":
        return "fault: the charger reports an error"
    return None


__all__ = ["EventKind", "EventLog", "StatusWatcher"]
