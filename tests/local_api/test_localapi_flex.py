"""FlexManagement: limits, watchdog in virtual time, persistence (incl. kill -9)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from localapi_support import FUSE_A

from fuseguard.control.flex import (
    FlexManagement,
    FlexSettings,
    JsonFileFlexStore,
    MemoryFlexStore,
    check_current_limit,
)
from fuseguard.model.clock import VirtualClock


def test_defaults_follow_the_fuse(clock: VirtualClock) -> None:
    flex = FlexManagement(clock, fuse_a=40.0)
    assert flex.limit_a() == 40.0
    s = flex.settings()
    assert s == FlexSettings(activation=False, current_limit_a=40.0, fallback_current_limit_a=40.0)
    assert flex.seconds_until_expiry() is None
    assert not flex.in_fallback


def test_limit_change_applies_only_with_activation(flex: FlexManagement) -> None:
    flex.update(current_limit_a=25.0)
    assert flex.limit_a() == FUSE_A  # activation off: external limit ignored
    flex.update(activation=True)
    assert flex.limit_a() == 25.0
    flex.update(current_limit_a=100.0)
    assert flex.limit_a() == FUSE_A  # never above the fuse
    assert flex.settings().current_limit_a == 100.0
    flex.update(activation=False)
    assert flex.limit_a() == FUSE_A


async def test_watchdog_expiry_in_virtual_time(flex: FlexManagement, clock: VirtualClock) -> None:
    events: list[float] = []
    flex.subscribe(lambda: events.append(flex.limit_a()))
    flex.update(activation=True, current_limit_a=32.0, fallback_current_limit_a=8.0)
    assert events == [32.0]
    await clock.advance(119.0)
    assert flex.limit_a() == 32.0
    assert flex.seconds_until_expiry() == pytest.approx(1.0)
    flex.keep_alive()
    await clock.advance(119.0)
    assert not flex.in_fallback  # keep-alive reset the watchdog
    await clock.advance(1.5)
    assert flex.in_fallback
    assert flex.limit_a() == 8.0
    assert flex.settings().current_limit_a == 8.0  # reported as the fallback
    assert flex.seconds_until_expiry() == 0.0
    assert events == [32.0, 8.0]  # the expiry was pushed by the timer
    # a keep-alive leaves fallback mode, but CurrentLimit fell into the fallback (device-like)
    flex.keep_alive()
    assert not flex.in_fallback
    assert flex.limit_a() == 8.0
    # the next write restores normal operation
    flex.update(current_limit_a=30.0)
    assert flex.limit_a() == 30.0
    assert flex.seconds_until_expiry() == pytest.approx(120.0)


async def test_restore_previous_limit_when_overwrite_is_off(clock: VirtualClock) -> None:
    flex = FlexManagement(clock, fuse_a=FUSE_A, timeout_s=10.0, overwrite_limit_on_expiry=False)
    flex.update(activation=True, current_limit_a=20.0, fallback_current_limit_a=6.0)
    await clock.advance(11.0)
    assert flex.limit_a() == 6.0
    assert flex.settings().current_limit_a == 6.0
    flex.keep_alive()
    assert flex.limit_a() == 20.0


async def test_no_watchdog_without_activation(flex: FlexManagement, clock: VirtualClock) -> None:
    flex.update(current_limit_a=20.0, fallback_current_limit_a=5.0)
    await clock.advance(10_000.0)
    assert not flex.in_fallback
    assert flex.limit_a() == FUSE_A


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, 1e9])
def test_invalid_currents_are_rejected_without_change(flex: FlexManagement, bad: float) -> None:
    flex.update(activation=True, current_limit_a=20.0)
    with pytest.raises(ValueError, match="CurrentLimit"):
        flex.update(current_limit_a=bad)
    with pytest.raises(ValueError, match="FallbackCurrentLimit"):
        flex.update(current_limit_a=5.0, fallback_current_limit_a=bad)
    assert flex.settings().current_limit_a == 20.0  # all-or-nothing


def test_settings_persist_across_restart(tmp_path: Path, clock: VirtualClock) -> None:
    path = tmp_path / "flex.json"
    flex = FlexManagement(clock, fuse_a=FUSE_A, store=JsonFileFlexStore(path))
    flex.update(activation=True, current_limit_a=21.5, fallback_current_limit_a=7.0)
    restarted = FlexManagement(VirtualClock(), fuse_a=FUSE_A, store=JsonFileFlexStore(path))
    assert restarted.settings() == FlexSettings(True, 21.5, 7.0)
    assert restarted.limit_a() == 21.5
    assert restarted.seconds_until_expiry() == pytest.approx(120.0)  # fresh watchdog


async def test_expiry_overwrite_is_persisted(tmp_path: Path, clock: VirtualClock) -> None:
    path = tmp_path / "flex.json"
    flex = FlexManagement(clock, fuse_a=FUSE_A, timeout_s=5.0, store=JsonFileFlexStore(path))
    flex.update(activation=True, current_limit_a=30.0, fallback_current_limit_a=9.0)
    await clock.advance(6.0)
    assert JsonFileFlexStore(path).load() == FlexSettings(True, 9.0, 9.0)


def test_corrupt_store_falls_back_to_defaults(tmp_path: Path, clock: VirtualClock) -> None:
    path = tmp_path / "flex.json"
    path.write_text('{"activation": "yes"', encoding="utf-8")
    assert JsonFileFlexStore(path).load() is None
    flex = FlexManagement(clock, fuse_a=FUSE_A, store=JsonFileFlexStore(path))
    assert flex.settings().activation is False


_KILL_SCRIPT = """
import os, signal, sys
from pathlib import Path
from fuseguard.control.flex import FlexManagement, JsonFileFlexStore
from fuseguard.model.clock import VirtualClock
flex = FlexManagement(VirtualClock(), fuse_a=63.0, store=JsonFileFlexStore(Path(sys.argv[1])))
flex.update(activation=True, current_limit_a=float(sys.argv[2]), fallback_current_limit_a=4.5)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_settings_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "flex.json"
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_SCRIPT, str(path), "17.25"],
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert JsonFileFlexStore(path).load() == FlexSettings(True, 17.25, 4.5)
    assert not list(tmp_path.glob(".*.tmp"))


def test_listener_errors_do_not_break_updates(flex: FlexManagement) -> None:
    def boom() -> None:
        raise RuntimeError("listener bug")

    flex.subscribe(boom)
    flex.update(activation=True, current_limit_a=12.0)
    assert flex.limit_a() == 12.0


_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("update"),
            st.booleans() | st.none(),
            st.floats(0, 200) | st.none(),
            st.floats(0, 200) | st.none(),
        ),
        st.tuples(st.just("keep_alive")),
        st.tuples(st.just("advance"), st.floats(0, 200)),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(ops=_ops)
async def test_limit_is_always_within_fuse_and_matches_state(ops: list[tuple[object, ...]]) -> None:
    clock = VirtualClock()
    store = MemoryFlexStore()
    flex = FlexManagement(clock, fuse_a=FUSE_A, timeout_s=60.0, store=store)
    for op in ops:
        if op[0] == "update":
            _, act, lim, fb = op
            flex.update(activation=act, current_limit_a=lim, fallback_current_limit_a=fb)  # type: ignore[arg-type]
        elif op[0] == "keep_alive":
            flex.keep_alive()
        else:
            await clock.advance(float(op[1]))  # type: ignore[arg-type]
        limit = flex.limit_a()
        s = flex.settings()
        assert 0.0 <= limit <= FUSE_A
        if not s.activation:
            assert limit == FUSE_A
        elif flex.in_fallback:
            assert limit == min(FUSE_A, s.fallback_current_limit_a)
        else:
            assert limit == min(FUSE_A, s.current_limit_a)
        assert store.saved is None or store.saved.activation == s.activation


def test_a_negative_zero_limit_is_read_back_as_zero() -> None:
    """``CurrentLimit: -0.0`` (JSON and Modbus floats allow it) is 0 A, read back as 0.0, not
    as ``-0.0`` (found by the round-9 red team)."""
    import math

    value = check_current_limit(-0.0, "CurrentLimit")
    assert value == 0.0 and math.copysign(1.0, value) == 1.0
    with pytest.raises(ValueError, match="must not be negative"):
        check_current_limit(-0.1, "CurrentLimit")
