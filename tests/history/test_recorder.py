"""The recorder against a fake status stream, on SQLite and PostgreSQL: samples, downsampling,
compliance with causes, sessions, retention."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from fuseguard.api.web.recorder import HistoryRecorder, cause_of
from fuseguard.model.circuits import MAIN
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.model.status import PlugStatus
from fuseguard.store.db import SCHEMA_VERSION, init_schema
from fuseguard.store.history import HistoryRepository
from fuseguard.store.schema import PV_COLUMNS, schema_version_table

from ..web.webkit import TREE, plug_view, status

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _recorder(engine: AsyncEngine, clock: VirtualClock) -> HistoryRecorder:
    return HistoryRecorder(HistoryRepository(engine), TREE, clock)


async def test_one_sample_per_second_and_minute_aggregates(engine: AsyncEngine) -> None:
    clock = VirtualClock(T0)
    rec = _recorder(engine, clock)
    for i in range(90):  # a minute and a half, two cycles per second
        grid = Phases(5.0 + (i % 60) * 0.5, 20.0, 5.0)
        for half in (0, 500_000):
            t = T0 + timedelta(seconds=i, microseconds=half)
            rec.on_status(status(t, grid_current_a=grid))
    written = await rec.flush()
    # 90 samples, two minutes (the second one so far), their circuit maxima, the open session
    assert written == 90 + 2 + 4 + 1
    repo = rec.repo
    samples = await repo.samples(T0, T0 + timedelta(minutes=5))
    assert len(samples) == 90
    assert samples[5].grid_a == Phases(7.5, 20.0, 5.0)
    assert samples[0].ev_a == Phases(15.5, 15.2, 15.8)  # the plug's grid current
    assert samples[0].limit_a == Phases.uniform(35.0)
    assert samples[0].non_ev_a == Phases(9.5, 4.8, 6.2)
    minutes = await repo.minutes(T0, T0 + timedelta(hours=1))
    assert [m.time for m in minutes] == [T0, T0 + timedelta(minutes=1)]
    first, running = minutes
    assert running.samples == 30  # so far
    assert running.values["grid_l1_max"] == 5.0 + 29 * 0.5
    assert first.samples == 60
    assert first.values["grid_l1_min"] == 5.0
    assert first.values["grid_l1_max"] == 34.5
    assert first.values["grid_l1_mean"] == pytest.approx(19.75)
    assert first.values["grid_l2_mean"] == 20.0
    for i in range(90, 120):
        rec.on_status(status(T0 + timedelta(seconds=i), grid_current_a=Phases(1.0, 2.0, 3.0)))
    await rec.close()  # the running minute is completed on close
    minutes = await repo.minutes(T0, T0 + timedelta(hours=1))
    assert [m.time for m in minutes] == [T0, T0 + timedelta(minutes=1)]
    assert minutes[1].samples == 60
    assert minutes[1].values["grid_l1_min"] == 1.0


async def test_exceedances_carry_their_cause_and_compliance_the_maximum(
    engine: AsyncEngine,
) -> None:
    clock = VirtualClock(T0)
    rec = _recorder(engine, clock)
    ok = Phases(25.0, 20.0, 22.0)
    rec.on_status(status(T0, grid_current_a=ok))
    rec.on_status(status(T0 + timedelta(seconds=1), grid_current_a=Phases(36.5, 20.0, 22.0)))
    rec.on_status(
        status(
            T0 + timedelta(seconds=2),
            grid_current_a=Phases(20.0, 37.0, 22.0),
            meter_ok=False,
            meter_fallback=True,
        )
    )
    stuck = plug_view(stuck=True, grid_current_a=Phases(26.0, 15.0, 15.0))
    rec.on_status(status(T0 + timedelta(seconds=3), grid_current_a=ok, plugs=(stuck,)))
    await rec.close()
    repo = rec.repo
    rows = await repo.exceedances(T0, T0 + timedelta(minutes=1))
    got = [(r.time - T0, r.circuit, r.phase, r.cause) for r in rows]
    assert got == [
        (timedelta(seconds=1), MAIN, "L1", "load step"),
        (timedelta(seconds=2), MAIN, "L2", "meter loss"),
        (timedelta(seconds=3), "garage", "L1", "stuck contactor"),
    ]
    assert rows[0].current_a == 36.5
    assert rows[0].limit_a == 35.0
    assert rows[2].current_a == 27.0  # 1 A non-EV load + 26 A on the stuck plug
    comp = {c.circuit: c for c in await repo.compliance(T0, T0 + timedelta(days=1))}
    assert comp[MAIN].max_a == Phases(36.5, 37.0, 22.0)
    assert comp[MAIN].fuse_a == Phases.uniform(35.0)
    assert comp[MAIN].max_ratio == pytest.approx(37.0 / 35.0)
    assert comp["garage"].max_a.l1 == 27.0
    assert await repo.exceedances(T0 + timedelta(minutes=1), T0 + timedelta(days=1)) == []


def test_cause_prefers_meter_loss_over_a_stuck_plug() -> None:
    st = status(T0, meter_ok=False, plugs=(plug_view(stuck=True),))
    assert cause_of(st) == "meter loss"


async def test_sessions_from_the_status_stream(engine: AsyncEngine) -> None:
    clock = VirtualClock(T0)
    rec = _recorder(engine, clock)
    idle = plug_view(status=PlugStatus.IDLE, current_a=Phases(), energy_wh=None)
    second = 0

    def feed(plug: object, n: int) -> None:
        nonlocal second
        for _ in range(n):
            rec.on_status(status(T0 + timedelta(seconds=second), plugs=(plug,)))
            second += 1

    feed(idle, 5)
    feed(plug_view(status=PlugStatus.CONNECTED, current_a=Phases(), energy_wh=0.0), 5)
    feed(plug_view(current_a=Phases(16.0, 16.0, 16.0), energy_wh=100.0), 10)
    await rec.flush()
    open_ = await rec.repo.sessions()
    assert len(open_) == 1
    assert open_[0].ended_at is None
    assert open_[0].started_at == T0 + timedelta(seconds=5)
    feed(plug_view(current_a=Phases(10.0, 10.0, 10.0), energy_wh=250.0), 10)
    feed(plug_view(status=PlugStatus.OFFLINE, online=False, energy_wh=None), 3)  # stays open
    feed(idle, 2)
    feed(plug_view(current_a=Phases(8.0, 8.0, 8.0), energy_wh=5.0), 2)  # a second session
    await rec.close()
    sessions = await rec.repo.sessions()
    assert len(sessions) == 2
    newest, first = sessions
    assert first.plug_id == "wb1"
    assert first.ended_at == T0 + timedelta(seconds=33)
    assert first.energy_wh == 250.0
    assert first.max_current_a == 16.0
    assert first.mean_current_a == pytest.approx(13.0)
    assert newest.ended_at is None
    assert newest.energy_wh == 5.0
    assert await rec.repo.sessions(plug_id="other") == []
    assert await rec.repo.plug_ids() == ["wb1"]


async def test_retention_prunes_raw_samples_first(engine: AsyncEngine) -> None:
    clock = VirtualClock(T0)
    rec = HistoryRecorder(HistoryRepository(engine), TREE, clock, raw_hours=1, minute_days=2)
    for day in range(3):
        for i in range(61):
            rec.on_status(status(T0 + timedelta(days=day, seconds=i)))
    await rec.close()
    repo = rec.repo
    end = T0 + timedelta(days=4)
    assert len(await repo.samples(T0, end)) == 183
    await clock.advance(2 * 86400 + 7200)  # 2 h after the last day's samples
    await rec.prune()
    assert await repo.samples(T0, end) == []
    minutes = await repo.minutes(T0, end)
    assert [m.time.day for m in minutes] == [2, 2, 3, 3]  # day 1 is older than 2 days


async def test_writer_task_flushes_on_its_own(engine: AsyncEngine) -> None:
    clock = VirtualClock(T0)
    rec = HistoryRecorder(HistoryRepository(engine), TREE, clock, flush_s=2.0)
    rec.start()
    rec.on_status(status(T0))
    await clock.advance(2.5)
    for _ in range(50):
        if await rec.repo.samples(T0, T0 + timedelta(seconds=1)):
            break
        await clock.advance(0.1)
    assert len(await rec.repo.samples(T0, T0 + timedelta(seconds=1))) == 1
    await rec.close()


async def test_a_restart_continues_the_open_session(engine: AsyncEngine) -> None:
    clock = VirtualClock(T0)
    rec = _recorder(engine, clock)
    for i in range(10):
        rec.on_status(status(T0 + timedelta(seconds=i), plugs=(plug_view(energy_wh=10.0 * i),)))
    await rec.close()
    again = _recorder(engine, clock)  # a new edge process on the same store
    assert await again.resume() == 1
    for i in range(20, 30):
        plug = plug_view(current_a=Phases(10.0, 10.0, 10.0), energy_wh=10.0 * i)
        again.on_status(status(T0 + timedelta(seconds=i), plugs=(plug,)))
    idle = plug_view(status=PlugStatus.IDLE, current_a=Phases(), energy_wh=None)
    again.on_status(status(T0 + timedelta(seconds=30), plugs=(idle,)))
    await again.close()
    (session,) = await again.repo.sessions()
    assert session.started_at == T0
    assert session.ended_at == T0 + timedelta(seconds=30)
    assert session.energy_wh == 290.0
    assert session.charging_s == 20
    assert session.max_current_a == 15.8
    assert session.mean_current_a == pytest.approx((15.8 * 10 + 10.0 * 10) / 20)
    assert await again.repo.open_sessions() == []


async def test_pv_production_in_samples_and_minute_aggregates(engine: AsyncEngine) -> None:
    clock = VirtualClock(T0)
    rec = _recorder(engine, clock)
    for i in range(120):
        meter_w: float | None = -(1000.0 + 100.0 * (i % 60))  # the meter counts production < 0
        if i >= 60 and i % 2:
            meter_w = None if i % 4 == 1 else math.nan  # PV meter lost / garbage: not recorded
        rec.on_status(status(T0 + timedelta(seconds=i), pv_power_w=meter_w))
    rec.on_status(status(T0 + timedelta(seconds=120)))  # no PV meter at all
    await rec.close()
    samples = await rec.repo.samples(T0, T0 + timedelta(minutes=5))
    assert [s.pv_w for s in samples[:3]] == [1000.0, 1100.0, 1200.0]
    assert [s.pv_w for s in samples[60:64]] == [1000.0, None, 1200.0, None]
    assert samples[120].pv_w is None
    first, second, third = await rec.repo.minutes(T0, T0 + timedelta(hours=1))
    assert first.pv_w == (1000.0, pytest.approx(3950.0), 6900.0)
    assert second.pv_w == (1000.0, pytest.approx(3900.0), 6800.0)  # the even seconds only
    assert third.pv_w is None
    assert first.values["grid_l1_max"] == 25.0  # the per-phase series are unchanged


async def test_schema_1_database_gets_the_pv_columns(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:  # make it look like a version 1 database
        for table, columns in PV_COLUMNS.items():
            for column in columns:
                await conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        await conn.execute(sa.text("ALTER TABLE charge_sessions DROP COLUMN id_tag"))
        await conn.execute(schema_version_table.update().values(version=1))
    await init_schema(engine)
    async with engine.connect() as conn:
        version = (await conn.execute(sa.select(schema_version_table.c.version))).scalar_one()
        names = await conn.run_sync(
            lambda sync: {c["name"] for c in sa.inspect(sync).get_columns("history_minutes")}
        )
        session_columns = await conn.run_sync(
            lambda sync: {c["name"] for c in sa.inspect(sync).get_columns("charge_sessions")}
        )
    assert version == SCHEMA_VERSION == 3
    assert {"pv_w_min", "pv_w_mean", "pv_w_max"} <= names
    assert "id_tag" in session_columns  # migration 2 -> 3
    rec = _recorder(engine, VirtualClock(T0))
    rec.on_status(status(T0, pv_power_w=-2500.0))
    await rec.close()
    (sample,) = await rec.repo.samples(T0, T0 + timedelta(seconds=1))
    assert sample.pv_w == 2500.0
