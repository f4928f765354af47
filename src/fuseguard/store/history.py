"""History in the store: 1 s samples, 1 min aggregates, compliance rows and charging sessions.

The recorder (:mod:`fuseguard.api.web.recorder`) builds the rows from the controller's status
stream and hands them over in batches (:meth:`HistoryRepository.write`, one transaction per
batch). Retention: raw samples for ``history_raw_hours`` (48 h), everything minute-based
(aggregates, per-circuit maxima, exceedances) and the sessions for ``history_minute_days`` (a
year); :meth:`HistoryRepository.prune` deletes what is older.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fuseguard.model.phases import Phases
from fuseguard.store.db import dialect_insert, writing
from fuseguard.store.schema import (
    HISTORY_SERIES,
    charge_sessions,
    history_circuit_max,
    history_exceedances,
    history_minutes,
    history_samples,
)

PHASE_NAMES = ("L1", "L2", "L3")
_AGGREGATES = ("min", "mean", "max")
#: Rows one query returns at most (a day of seconds is 86 400; the chart asks minutes beyond).
MAX_ROWS = 200_000


@dataclass(frozen=True, slots=True)
class HistorySample:
    """One second of the main circuit: grid current, limit in force, EV and non-EV load, PV."""

    time: datetime
    grid_a: Phases
    limit_a: Phases
    ev_a: Phases
    non_ev_a: Phases
    meter_ok: bool = True
    pv_w: float | None = None  # PV production (W, positive while producing); None: no reading

    def series(self) -> dict[str, Phases]:
        """The per-phase series by name (:data:`HISTORY_SERIES`)."""
        return {
            "grid": self.grid_a,
            "limit": self.limit_a,
            "ev": self.ev_a,
            "non_ev": self.non_ev_a,
        }


@dataclass(frozen=True, slots=True)
class MinuteAggregate:
    """Min/mean/max of every per-phase series over one minute (``time`` = its start).

    ``pv_w`` is the PV production's (min, mean, max) over the seconds with a PV reading, None
    when the minute had none.
    """

    time: datetime
    samples: int
    values: dict[str, float]  # "<series>_l<n>_<min|mean|max>"
    pv_w: tuple[float, float, float] | None = None


@dataclass(frozen=True, slots=True)
class CircuitMinuteMax:
    """The highest current per phase of one circuit within one minute, and its fuse."""

    time: datetime
    circuit: str
    max_a: Phases
    fuse_a: Phases


@dataclass(frozen=True, slots=True)
class Exceedance:
    """One second in which a circuit's phase carried more than the limit in force."""

    time: datetime
    circuit: str
    phase: str
    current_a: float
    limit_a: float
    fuse_a: float
    cause: str  # "load step" | "meter loss" | "stuck contactor"


@dataclass(slots=True)
class ChargeSession:
    """One charging session of one plug (``ended_at`` None while it is open)."""

    id: str
    plug_id: str
    plug_label: str
    started_at: datetime
    ended_at: datetime | None = None
    energy_wh: float | None = None
    max_current_a: float = 0.0
    mean_current_a: float = 0.0
    charging_s: int = 0
    id_tag: str | None = None


@dataclass(slots=True)
class HistoryBatch:
    """What the recorder collected since its last write."""

    samples: list[HistorySample] = field(default_factory=list)
    minutes: list[MinuteAggregate] = field(default_factory=list)
    circuit_max: list[CircuitMinuteMax] = field(default_factory=list)
    exceedances: list[Exceedance] = field(default_factory=list)
    sessions: list[ChargeSession] = field(default_factory=list)

    def __len__(self) -> int:
        return (
            len(self.samples)
            + len(self.minutes)
            + len(self.circuit_max)
            + len(self.exceedances)
            + len(self.sessions)
        )


@dataclass(frozen=True, slots=True)
class CircuitCompliance:
    """A circuit over a period: the highest current per phase against its fuse."""

    circuit: str
    fuse_a: Phases
    max_a: Phases

    @property
    def ratio(self) -> Phases:
        """Per phase the highest current as a fraction of the fuse."""
        return Phases.of(m / f for m, f in zip(self.max_a, self.fuse_a, strict=True))

    @property
    def max_ratio(self) -> float:
        """The highest phase current as a fraction of its fuse."""
        return self.ratio.max


def _sample_row(s: HistorySample) -> dict[str, object]:
    row: dict[str, object] = {"time": s.time, "meter_ok": s.meter_ok, "pv_w": s.pv_w}
    for name, phases in s.series().items():
        for i, value in enumerate(phases, start=1):
            row[f"{name}_l{i}"] = value
    return row


def _minute_row(m: MinuteAggregate) -> dict[str, object]:
    pv = m.pv_w if m.pv_w is not None else (None, None, None)
    return {
        "time": m.time,
        "samples": m.samples,
        **m.values,
        **{f"pv_w_{agg}": v for agg, v in zip(_AGGREGATES, pv, strict=True)},
    }


def _pv_of(row: sa.Row[tuple[object, ...]]) -> tuple[float, float, float] | None:
    m = row._mapping
    values = [m[f"pv_w_{agg}"] for agg in _AGGREGATES]
    if any(v is None for v in values):
        return None
    lo, mean, hi = (float(v) for v in values)
    return lo, mean, hi


def _phases(row: sa.Row[tuple[object, ...]], prefix: str, suffix: str = "") -> Phases:
    m = row._mapping
    return Phases.of(float(m[f"{prefix}_l{i}{suffix}"]) for i in (1, 2, 3))


class HistoryRepository:
    """Reads and writes the history tables."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def write(self, batch: HistoryBatch) -> None:
        """Store one batch in one transaction (samples/minutes already present are replaced)."""
        if not len(batch):
            return
        async with writing(self._engine) as conn:
            await self._upsert(
                conn, history_samples, [_sample_row(s) for s in batch.samples], ["time"]
            )
            rows = [_minute_row(m) for m in batch.minutes]
            await self._upsert(conn, history_minutes, rows, ["time"])
            rows = [
                {
                    "time": c.time,
                    "circuit": c.circuit,
                    "max_l1": c.max_a.l1,
                    "max_l2": c.max_a.l2,
                    "max_l3": c.max_a.l3,
                    "fuse_l1": c.fuse_a.l1,
                    "fuse_l2": c.fuse_a.l2,
                    "fuse_l3": c.fuse_a.l3,
                }
                for c in batch.circuit_max
            ]
            await self._upsert(conn, history_circuit_max, rows, ["time", "circuit"])
            if batch.exceedances:
                await conn.execute(
                    history_exceedances.insert(), [asdict(e) for e in batch.exceedances]
                )
            rows = [asdict(s) for s in batch.sessions]
            await self._upsert(conn, charge_sessions, rows, ["id"])

    @staticmethod
    async def _upsert(
        conn: AsyncConnection,
        table: sa.Table,
        rows: list[dict[str, object]],
        keys: list[str],
    ) -> None:
        if not rows:
            return
        # one row per key, the last one wins (a running minute is rewritten batch by batch)
        rows = list({tuple(r[k] for k in keys): r for r in rows}.values())
        stmt = dialect_insert(conn, table)
        update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        await conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update), rows)

    async def prune(self, now: datetime, raw_hours: float, minute_days: float) -> int:
        """Delete raw samples older than ``raw_hours`` and the rest older than ``minute_days``."""
        raw_cut = now - timedelta(hours=raw_hours)
        minute_cut = now - timedelta(days=minute_days)
        deleted = 0
        async with writing(self._engine) as conn:
            for table, column, cut in (
                (history_samples, history_samples.c.time, raw_cut),
                (history_minutes, history_minutes.c.time, minute_cut),
                (history_circuit_max, history_circuit_max.c.time, minute_cut),
                (history_exceedances, history_exceedances.c.time, minute_cut),
                (charge_sessions, charge_sessions.c.started_at, minute_cut),
            ):
                result = await conn.execute(table.delete().where(column < cut))
                deleted += result.rowcount or 0
        return deleted

    async def samples(self, start: datetime, end: datetime) -> list[HistorySample]:
        """The 1 s samples in ``[start, end)``, oldest first."""
        query = (
            sa.select(history_samples)
            .where(history_samples.c.time >= start, history_samples.c.time < end)
            .order_by(history_samples.c.time)
            .limit(MAX_ROWS)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            HistorySample(
                time=r.time,
                grid_a=_phases(r, "grid"),
                limit_a=_phases(r, "limit"),
                ev_a=_phases(r, "ev"),
                non_ev_a=_phases(r, "non_ev"),
                meter_ok=bool(r.meter_ok),
                pv_w=None if r.pv_w is None else float(r.pv_w),
            )
            for r in rows
        ]

    async def minutes(self, start: datetime, end: datetime) -> list[MinuteAggregate]:
        """The 1 min aggregates in ``[start, end)``, oldest first."""
        query = (
            sa.select(history_minutes)
            .where(history_minutes.c.time >= start, history_minutes.c.time < end)
            .order_by(history_minutes.c.time)
            .limit(MAX_ROWS)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        skip = {"time", "samples", *(f"pv_w_{agg}" for agg in _AGGREGATES)}
        out = []
        for r in rows:
            values = {k: float(v) for k, v in r._mapping.items() if k not in skip}
            out.append(MinuteAggregate(r.time, int(r.samples), values, _pv_of(r)))
        return out

    async def compliance(self, start: datetime, end: datetime) -> list[CircuitCompliance]:
        """Per circuit the highest current per phase in ``[start, end)`` against its fuse."""
        t = history_circuit_max.c
        query = (
            sa.select(
                t.circuit,
                sa.func.max(t.max_l1),
                sa.func.max(t.max_l2),
                sa.func.max(t.max_l3),
                sa.func.min(t.fuse_l1),
                sa.func.min(t.fuse_l2),
                sa.func.min(t.fuse_l3),
            )
            .where(t.time >= start, t.time < end)
            .group_by(t.circuit)
            .order_by(t.circuit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            CircuitCompliance(
                str(r[0]),
                Phases(float(r[4]), float(r[5]), float(r[6])),
                Phases(float(r[1]), float(r[2]), float(r[3])),
            )
            for r in rows
        ]

    async def exceedances(
        self, start: datetime, end: datetime, limit: int = 10_000
    ) -> list[Exceedance]:
        """Every recorded second over a limit in ``[start, end)``, oldest first."""
        t = history_exceedances
        query = (
            sa.select(
                t.c.time, t.c.circuit, t.c.phase, t.c.current_a, t.c.limit_a, t.c.fuse_a, t.c.cause
            )
            .where(t.c.time >= start, t.c.time < end)
            .order_by(t.c.time, t.c.circuit, t.c.phase)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [Exceedance(**r._mapping) for r in rows]

    async def sessions(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        plug_id: str | None = None,
        limit: int = 10_000,
    ) -> list[ChargeSession]:
        """Sessions started in ``[start, end)`` (of one plug, when given), newest first."""
        t = charge_sessions.c
        query = sa.select(charge_sessions).order_by(t.started_at.desc()).limit(limit)
        if start is not None:
            query = query.where(t.started_at >= start)
        if end is not None:
            query = query.where(t.started_at < end)
        if plug_id is not None:
            query = query.where(t.plug_id == plug_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [ChargeSession(**r._mapping) for r in rows]

    async def open_sessions(self) -> list[ChargeSession]:
        """Sessions without an end (the edge stopped while a vehicle was plugged in)."""
        query = sa.select(charge_sessions).where(charge_sessions.c.ended_at.is_(None))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [ChargeSession(**r._mapping) for r in rows]

    async def plug_ids(self) -> Sequence[str]:
        """Every plug with a session on record."""
        query = sa.select(charge_sessions.c.plug_id).distinct().order_by(charge_sessions.c.plug_id)
        async with self._engine.connect() as conn:
            return [str(r[0]) for r in (await conn.execute(query)).all()]


__all__ = [
    "HISTORY_SERIES",
    "PHASE_NAMES",
    "ChargeSession",
    "CircuitCompliance",
    "CircuitMinuteMax",
    "Exceedance",
    "HistoryBatch",
    "HistoryRepository",
    "HistorySample",
    "MinuteAggregate",
]
