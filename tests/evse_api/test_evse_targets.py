from datetime import timedelta
from pathlib import Path

import pytest

from fuseguard.control.targets import EvseTargets, MemoryTargetStore, Target
from fuseguard.model.clock import VirtualClock
from fuseguard.store.db import create_engine, default_sqlite_url, init_schema
from fuseguard.store.targets import SqlTargetStore

A = "25104c56d7f848af830af4300193efb3"
B = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"


async def test_set_get_cap_and_expiry_in_virtual_time() -> None:
    clock = VirtualClock()
    targets = EvseTargets(clock)
    events: list[int | None] = []
    targets.subscribe(lambda: events.append(targets.cap_a(A)))
    target = await targets.set(A, 10, 3600)
    assert target == Target(10, clock.now() + timedelta(hours=1))
    assert targets.get(A) == target
    assert targets.cap_a(A) == 10
    assert targets.cap_a(B) is None
    await clock.advance(3599.5)
    assert targets.cap_a(A) == 10
    await clock.advance(0.5)
    assert targets.get(A) is None
    assert targets.cap_a(A) is None
    assert events == [10, None]  # set, then expiry: both notified


async def test_replacing_a_target_restarts_its_expiry() -> None:
    clock = VirtualClock()
    targets = EvseTargets(clock)
    await targets.set(A, 10, 60)
    await clock.advance(30)
    await targets.set(A, 0, 60)  # pause, for 60 s from now
    await clock.advance(45)  # the first target's deadline has passed
    assert targets.cap_a(A) == 0
    await clock.advance(15)
    assert targets.cap_a(A) is None


async def test_clear_returns_previous_and_cancels_expiry() -> None:
    clock = VirtualClock()
    targets = EvseTargets(clock)
    assert await targets.clear(A) is None
    set_ = await targets.set(A, 16, 100)
    await targets.set(B, 6, 100)
    notified: list[str] = []
    targets.subscribe(lambda: notified.append("x"))
    assert await targets.clear(A) == set_
    assert targets.get(A) is None
    assert targets.all() == {B: Target(6, clock.now() + timedelta(seconds=100))}
    await clock.advance(200)
    assert notified == ["x", "x"]  # clear of A, expiry of B (no stale timer for A)
    assert targets.all() == {}


async def test_invalid_arguments_are_refused() -> None:
    targets = EvseTargets(VirtualClock())
    with pytest.raises(ValueError, match="current_a"):
        await targets.set(A, -1, 10)
    with pytest.raises(ValueError, match="duration_s"):
        await targets.set(A, 10, 0)


async def test_targets_survive_a_restart_and_expired_ones_are_dropped(tmp_path: Path) -> None:
    clock = VirtualClock()
    url = default_sqlite_url(tmp_path)
    engine = create_engine(url)
    await init_schema(engine)
    first = EvseTargets(clock, SqlTargetStore(engine, "edge-1"))
    await first.load()
    await first.set(A, 12, 600)
    await first.set(B, 8, 60)
    await engine.dispose()

    await clock.advance(120)  # "down" for two minutes: B's target ran out meanwhile
    engine = create_engine(url)
    await init_schema(engine)
    store = SqlTargetStore(engine, "edge-1")
    second = EvseTargets(clock, store)
    await second.load()
    assert second.cap_a(A) == 12
    assert second.get(A) == Target(12, clock.now() + timedelta(seconds=480))
    assert second.cap_a(B) is None
    assert set(await store.load_all()) == {A}  # the expired row was deleted on load
    await clock.advance(480)
    assert second.cap_a(A) is None
    await engine.dispose()


async def test_memory_store_is_the_default() -> None:
    store = MemoryTargetStore()
    clock = VirtualClock()
    targets = EvseTargets(clock, store)
    await targets.set(A, 10, 10)
    assert store.targets == {A: Target(10, clock.now() + timedelta(seconds=10))}
    await targets.clear(A)
    assert store.targets == {}
