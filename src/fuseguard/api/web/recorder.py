"""The history recorder: an edge service that turns the controller's status stream into history.

:meth:`HistoryRecorder.on_status` is a controller listener and does only arithmetic: one sample
per second of the main circuit (grid current, limit in force, EV and non-EV load per phase, and
the PV production when a PV meter is read), the running minute's min/mean/max (downsampled here,
written when the minute ends), per circuit the minute's highest current per phase, every second a
phase is above its limit with the cause (derived now, from this cycle: meter loss, stuck
contactor, else a load step) and the charging sessions. A task writes what piled up every
:attr:`flush_s` seconds in one transaction and prunes by the retention every :attr:`prune_s`; the
control loop never waits for the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from fuseguard.control.types import ControllerStatus, PlugView
from fuseguard.model.circuits import MAIN, CircuitTree
from fuseguard.model.clock import Clock
from fuseguard.model.phases import Phases
from fuseguard.model.status import PlugStatus
from fuseguard.store.history import (
    HISTORY_SERIES,
    PHASE_NAMES,
    ChargeSession,
    CircuitMinuteMax,
    Exceedance,
    HistoryBatch,
    HistoryRepository,
    HistorySample,
    MinuteAggregate,
)

log = structlog.get_logger(__name__)

#: A plug with a vehicle: a session is open while the plug reports one of these.
SESSION_STATUSES = frozenset(
    {
        PlugStatus.CHARGING,
        PlugStatus.RECENTLY_STARTED_CHARGING,
        PlugStatus.CONNECTED,
        PlugStatus.DISCHARGING,
    }
)
#: States that say nothing about the vehicle (an open session stays open through them).
UNKNOWN_STATUSES = frozenset(
    {
        PlugStatus.OFFLINE,
        PlugStatus.CLOUD_OFFLINE,
        PlugStatus.UNKNOWN,
        PlugStatus.INIT,
        PlugStatus.ERROR,
        PlugStatus.STARTING,
    }
)
#: Pending rows beyond which the oldest samples are dropped (the store is down for long).
MAX_PENDING_SAMPLES = 3600


def cause_of(status: ControllerStatus) -> str:
    """Why a limit is exceeded in this cycle, as the controller saw it."""
    if not status.meter_ok or status.meter_fallback:
        return "meter loss"
    if any(p.stuck for p in status.plugs):
        return "stuck contactor"
    return "load step"


def _pv_w(pv_power_w: float | None) -> float | None:
    """The PV production to record (W, positive while producing) from the PV meter's power
    (production negative); None without a finite reading (no PV meter or no fresh sample)."""
    if pv_power_w is None or not math.isfinite(pv_power_w):
        return None
    return 0.0 - pv_power_w


def _sum(values: list[Phases]) -> Phases:
    total = Phases()
    for v in values:
        total = total + v
    return total


def circuit_currents(status: ControllerStatus, tree: CircuitTree) -> dict[str, Phases]:
    """Per circuit its current: the grid meter for the main fuse, else non-EV load plus plugs."""
    out: dict[str, Phases] = {}
    for cid in tree.ids:
        if cid == MAIN:
            out[cid] = status.grid_current_a
            continue
        plugs = [p.grid_current_a for p in status.plugs if cid in tree.path(p.circuit)]
        out[cid] = status.non_ev_load_a.get(cid, Phases()) + _sum(plugs)
    return out


@dataclass
class _Minute:
    start: datetime
    count: int = 0
    lo: dict[str, float] = field(default_factory=dict)
    hi: dict[str, float] = field(default_factory=dict)
    total: dict[str, float] = field(default_factory=dict)
    circuit_hi: dict[str, Phases] = field(default_factory=dict)
    pv_count: int = 0
    pv_lo: float = math.inf
    pv_hi: float = -math.inf
    pv_total: float = 0.0

    def add(self, sample: HistorySample, circuits: dict[str, Phases]) -> None:
        self.count += 1
        if sample.pv_w is not None:
            self.pv_count += 1
            self.pv_lo = min(self.pv_lo, sample.pv_w)
            self.pv_hi = max(self.pv_hi, sample.pv_w)
            self.pv_total += sample.pv_w
        for name, phases in sample.series().items():
            for i, value in enumerate(phases, start=1):
                key = f"{name}_l{i}"
                self.lo[key] = min(self.lo.get(key, value), value)
                self.hi[key] = max(self.hi.get(key, value), value)
                self.total[key] = self.total.get(key, 0.0) + value
        for cid, amps in circuits.items():
            seen = self.circuit_hi.get(cid, amps)
            self.circuit_hi[cid] = Phases.of(max(a, b) for a, b in zip(seen, amps, strict=True))

    def aggregate(self) -> MinuteAggregate:
        values: dict[str, float] = {}
        for name in HISTORY_SERIES:
            for i in (1, 2, 3):
                key = f"{name}_l{i}"
                values[f"{key}_min"] = self.lo[key]
                values[f"{key}_mean"] = self.total[key] / self.count
                values[f"{key}_max"] = self.hi[key]
        pv = None
        if self.pv_count:
            pv = (self.pv_lo, self.pv_total / self.pv_count, self.pv_hi)
        return MinuteAggregate(self.start, self.count, values, pv)


@dataclass
class _OpenSession:
    row: ChargeSession
    current_sum_a: float = 0.0


class HistoryRecorder:
    """Controller listener + writer task for the history tables."""

    def __init__(
        self,
        repo: HistoryRepository,
        tree: CircuitTree,
        clock: Clock,
        *,
        raw_hours: float = 48.0,
        minute_days: float = 366.0,
        flush_s: float = 5.0,
        prune_s: float = 3600.0,
    ) -> None:
        self.repo = repo
        self._tree = tree
        self._clock = clock
        self.raw_hours = raw_hours
        self.minute_days = minute_days
        self.flush_s = flush_s
        self.prune_s = prune_s
        self._batch = HistoryBatch()
        self._last_second: datetime | None = None
        self._minute: _Minute | None = None
        self._sessions: dict[str, _OpenSession] = {}
        self._dirty_sessions: dict[str, ChargeSession] = {}
        self._task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()

    # --- the listener (runs in the control loop: arithmetic only) ------------------------------

    def on_status(self, status: ControllerStatus) -> None:
        """Record one cycle (at most one sample per wall-clock second)."""
        second = status.time.replace(microsecond=0)
        if second == self._last_second:
            return
        self._last_second = second
        plugs = _sum([p.grid_current_a for p in status.plugs])
        sample = HistorySample(
            time=second,
            grid_a=status.grid_current_a,
            limit_a=status.limits_a.get(MAIN, status.main_limit_a),
            ev_a=plugs,
            non_ev_a=status.non_ev_load_a.get(MAIN, Phases()),
            meter_ok=status.meter_ok and not status.meter_fallback,
            pv_w=_pv_w(status.pv_power_w),
        )
        circuits = circuit_currents(status, self._tree)
        self._add_sample(sample, circuits)
        self._check_limits(second, status, circuits)
        for plug in status.plugs:
            self._track_session(second, plug)

    def _add_sample(self, sample: HistorySample, circuits: dict[str, Phases]) -> None:
        if len(self._batch.samples) >= MAX_PENDING_SAMPLES:
            del self._batch.samples[0]
        self._batch.samples.append(sample)
        minute = sample.time.replace(second=0)
        if self._minute is not None and self._minute.start != minute:
            self._close_minute()
        if self._minute is None:
            self._minute = _Minute(minute)
        self._minute.add(sample, circuits)

    def _minute_rows(self, batch: HistoryBatch) -> None:
        """The running minute so far (rewritten by every later batch until the minute ends)."""
        m = self._minute
        if m is None or m.count == 0:
            return
        batch.minutes.append(m.aggregate())
        for cid, amps in m.circuit_hi.items():
            fuse = self._tree[cid].fuse
            batch.circuit_max.append(CircuitMinuteMax(m.start, cid, amps, fuse))

    def _close_minute(self) -> None:
        self._minute_rows(self._batch)
        self._minute = None

    def _check_limits(
        self, second: datetime, status: ControllerStatus, circuits: dict[str, Phases]
    ) -> None:
        cause: str | None = None
        for cid, amps in circuits.items():
            fuse = self._tree[cid].fuse
            limit = status.limits_a.get(cid, fuse)
            for i, name in enumerate(PHASE_NAMES):
                if amps[i] > limit[i] + 1e-9:
                    cause = cause or cause_of(status)
                    self._batch.exceedances.append(
                        Exceedance(second, cid, name, amps[i], limit[i], fuse[i], cause)
                    )

    def _track_session(self, second: datetime, plug: PlugView) -> None:
        open_ = self._sessions.get(plug.id)
        if plug.status in SESSION_STATUSES:
            if open_ is None:
                row = ChargeSession(secrets.token_hex(16), plug.id, plug.plug_label, second)
                open_ = self._sessions[plug.id] = _OpenSession(row)
            current = plug.current_a.max
            if current > 0.0:
                open_.current_sum_a += current
                open_.row.charging_s += 1
                open_.row.max_current_a = max(open_.row.max_current_a, current)
                open_.row.mean_current_a = open_.current_sum_a / open_.row.charging_s
            if plug.energy_wh is not None:
                open_.row.energy_wh = max(open_.row.energy_wh or 0.0, plug.energy_wh)
            if plug.id_tag is not None:
                open_.row.id_tag = plug.id_tag
            self._dirty_sessions[open_.row.id] = open_.row
        elif open_ is not None and plug.status not in UNKNOWN_STATUSES:
            open_.row.ended_at = second
            self._dirty_sessions[open_.row.id] = open_.row
            del self._sessions[plug.id]

    async def resume(self) -> int:
        """Continue the sessions the store holds open (the edge restarted during a session).

        A resumed session goes on while its plug still reports a vehicle and ends at the first
        cycle that says otherwise, so a restart neither splits a session nor double-counts.
        """
        rows = await self.repo.open_sessions()
        for row in rows:
            if row.plug_id not in self._sessions:
                self._sessions[row.plug_id] = _OpenSession(row, row.mean_current_a * row.charging_s)
        return len(rows)

    # --- the writer -----------------------------------------------------------------------------

    def _take(self, *, final: bool = False) -> HistoryBatch:
        if final:
            self._close_minute()
        batch = self._batch
        self._minute_rows(batch)  # so that pages see the running minute within a flush
        batch.sessions = [
            ChargeSession(**{f: getattr(s, f) for f in s.__slots__})  # a snapshot
            for s in self._dirty_sessions.values()
        ]
        self._batch = HistoryBatch()
        self._dirty_sessions = {}
        return batch

    async def flush(self, *, final: bool = False) -> int:
        """Write what is pending (``final``: also the running minute); returns the row count."""
        async with self._write_lock:
            batch = self._take(final=final)
            try:
                await self.repo.write(batch)
            except Exception as exc:  # the store may be down: keep recording, retry next time
                log.warning("history_write_failed", device="store", reason=repr(exc))
                self._requeue(batch)
                return 0
            return len(batch)

    def _requeue(self, batch: HistoryBatch) -> None:
        pending = self._batch
        pending.samples[:0] = batch.samples[-MAX_PENDING_SAMPLES:]
        pending.minutes[:0] = batch.minutes
        pending.circuit_max[:0] = batch.circuit_max
        pending.exceedances[:0] = batch.exceedances
        for s in batch.sessions:
            self._dirty_sessions.setdefault(s.id, s)

    async def prune(self) -> int:
        """Delete what is older than the retention."""
        return await self.repo.prune(self._clock.now(), self.raw_hours, self.minute_days)

    async def _run(self) -> None:
        since_prune = self.prune_s  # prune once at start
        while True:
            if since_prune >= self.prune_s:
                since_prune = 0.0
                try:
                    await self.prune()
                except Exception as exc:
                    log.warning("history_prune_failed", device="store", reason=repr(exc))
            await self._clock.sleep(self.flush_s)
            since_prune += self.flush_s
            await self.flush()

    def start(self) -> None:
        """Start the writer task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="history-recorder")

    async def close(self) -> None:
        """Stop the task and write what is pending, the running minute included."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush(final=True)


__all__ = ["SESSION_STATUSES", "HistoryRecorder", "cause_of", "circuit_currents"]
