"""The state walk behind the day jumps (``scenario/statewalk.py``): two captures equal modulo
the clock shift are accepted; any other difference (a value, a count, a structure, aliasing, a
time not shifted by exactly the clock's advance) is refused with its path; what cannot be walked
makes the capture fail; the declared counters are never read by the controller."""

from __future__ import annotations

import ast
import asyncio
import functools
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from fuseguard.scenario.statewalk import (
    COUNTER_HOOK,
    Capture,
    UnwalkableError,
    capture,
    first_difference,
)

SHIFT = 86_400.0
SRC = Path(__file__).resolve().parents[2] / "src" / "fuseguard"


@dataclass
class Policy:
    backoff_s: float = 30.0
    due_s: float = 1_000.0
    count: int = 3
    mode: str = "idle"
    history: deque[float] = field(default_factory=lambda: deque([10.0, 20.0], maxlen=4))
    seen: dict[str, float] = field(default_factory=lambda: {"g01": 500.0})
    at: datetime = datetime(2026, 1, 5, tzinfo=UTC)


class Plug:
    __slots__ = ("name", "policy", "tally")

    __fuseguard_counters__ = ("tally",)

    def __init__(self, name: str, policy: Policy) -> None:
        self.name = name
        self.policy = policy
        self.tally = 0


def _state(t0: float, **changes: object) -> list[tuple[str, object]]:
    """A small state at clock time ``t0``: times are ``t0 +`` something, the rest is not."""
    pol = Policy(
        due_s=t0 + 60.0,
        history=deque([t0 - 20.0, t0 - 10.0], maxlen=4),
        seen={"g01": t0 - 5.0},
        at=datetime(2026, 1, 5, tzinfo=UTC) + timedelta(seconds=t0),
    )
    for key, value in changes.items():
        setattr(pol, key, value)
    plug = Plug("g01", pol)
    return [("plugs", {"g01": plug}), ("arr", np.array([t0, 1.5]))]


def test_equal_modulo_the_shift_is_accepted() -> None:
    a = capture(_state(1_000.0), 1_000.0)
    b = capture(_state(1_000.0 + SHIFT), 1_000.0 + SHIFT)
    assert len(a.entries) == len(b.entries) > 10
    assert first_difference(a, b) is None


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"backoff_s": 60.0}, "plugs['g01'].policy.backoff_s"),
        ({"count": 4}, "plugs['g01'].policy.count"),
        ({"mode": "probe"}, "plugs['g01'].policy.mode"),
        ({"due_s": 1_000.0 + SHIFT + 61.0}, "plugs['g01'].policy.due_s"),  # shifted by more
        ({"due_s": 1_059.0}, "plugs['g01'].policy.due_s"),  # neither equal nor shifted
        ({"history": deque([1.0], maxlen=4)}, "history"),
        ({"seen": {"g02": 1_000.0 + SHIFT - 5.0}}, "seen"),
        ({"at": datetime(2026, 1, 5, tzinfo=UTC)}, "plugs['g01'].policy.at"),
    ],
)
def test_any_other_difference_is_refused_with_its_path(
    change: dict[str, object], path: str
) -> None:
    a = capture(_state(1_000.0), 1_000.0)
    b = capture(_state(1_000.0 + SHIFT, **change), 1_000.0 + SHIFT)
    diff = first_difference(a, b)
    assert diff is not None
    assert path in diff


def test_a_time_off_by_an_ulp_is_refused() -> None:
    """No tolerance: the scenario's times are binary fractions (exact sums); a time one ulp off
    the shifted value is another value, and so is a decimal time whose sums round differently
    (refused: a missed jump, never a wrong one)."""
    t0 = 1_000.25
    a = capture([("due", t0 + 60.0)], t0)
    later = t0 + SHIFT
    assert first_difference(a, capture([("due", later + 60.0)], later)) is None
    b = capture([("due", np.nextafter(later + 60.0, np.inf))], later)
    assert first_difference(a, b) is not None
    t1 = 1_000.1  # (t1 + SHIFT) + 60 is not (t1 + 60) + SHIFT in the last bit
    c = capture([("due", t1 + 60.0)], t1)
    assert first_difference(c, capture([("due", (t1 + SHIFT) + 60.0)], t1 + SHIFT)) is not None


def test_an_unbound_log_context_variable_is_an_atom() -> None:
    """structlog leaves ``...`` in a context once a bound variable is unbound; a task started in
    that context carries it (round 15: a log test left one behind in its worker, and the walk of
    a later test's tasks refused it)."""
    a = capture([("ctx", {"site": ...})], 0.0)
    assert first_difference(a, capture([("ctx", {"site": ...})], SHIFT)) is None
    assert first_difference(a, capture([("ctx", {"site": "garage"})], SHIFT)) is not None


def test_aliasing_and_arrays_are_compared() -> None:
    shared = [1.0]
    a = capture([("x", [shared, shared])], 0.0)
    b = capture([("x", [[1.0], [1.0]])], SHIFT)
    assert first_difference(a, b) is not None
    arr_a = capture([("a", np.array([5.0, 7.0]))], 0.0)
    arr_b = capture([("a", np.array([5.0, 7.5]))], SHIFT)
    assert first_difference(arr_a, arr_b) == "a: float array differs"


def test_counters_are_skipped_and_recorded() -> None:
    a_state, b_state = _state(0.0), _state(SHIFT)
    plug = b_state[0][1]["g01"]  # type: ignore[index]
    plug.tally = 99
    a, b = capture(a_state, 0.0), capture(b_state, SHIFT)
    assert first_difference(a, b) is None
    assert ("plugs['g01'].tally", "excluded", "excluded attribute") in b.entries


def test_closures_partials_and_methods_are_walked() -> None:
    def make(t: float) -> list[tuple[str, object]]:
        box = {"n": 1}

        def fire() -> None:
            box["n"] += 1

        pol = Policy(due_s=t)
        return [
            ("cb", fire),
            ("p", functools.partial(max, t, 3.0)),
            ("m", Plug("x", pol).__init__),
        ]

    a, b = capture(make(0.0), 0.0), capture(make(SHIFT), SHIFT)
    assert first_difference(a, b) is None
    state = make(SHIFT)
    state[0][1].__closure__[0].cell_contents["n"] = 2  # type: ignore[union-attr, index]
    diff = first_difference(a, capture(state, SHIFT))
    assert diff is not None
    assert "cb.<box>" in diff


@pytest.mark.parametrize("opaque", [threading.Lock, lambda: iter([1, 2]), socket.socket])
def test_what_cannot_be_walked_fails_closed(opaque: object) -> None:
    thing = opaque()  # type: ignore[operator]
    try:
        with pytest.raises(UnwalkableError) as err:
            capture([("ctl", {"plugs": [Policy(), thing]})], 0.0)
        assert err.value.path == "ctl['plugs'][1]"
    finally:
        if isinstance(thing, socket.socket):
            thing.close()


def test_suspended_tasks_are_walked_and_an_unreached_task_refuses() -> None:
    async def sleeper(fut: asyncio.Future[None], n: int) -> int:
        local = n * 2.0
        await fut
        return int(local)

    async def main() -> tuple[Capture, Capture, str]:
        loop = asyncio.get_running_loop()
        futs = [loop.create_future() for _ in range(2)]
        tasks = [asyncio.create_task(sleeper(f, n)) for f, n in zip(futs, (1, 2), strict=True)]
        await asyncio.sleep(0)
        me = asyncio.current_task()
        ex = {id(loop): "loop"}
        one = capture([("t", tasks[0])], 0.0, excluded=ex, driver=me)
        two = capture([("t", tasks[1])], SHIFT, excluded=ex, driver=me)
        try:
            capture([("t", tasks[0])], 0.0, excluded=ex, driver=me, tasks=asyncio.all_tasks())
        except UnwalkableError as err:
            missed = str(err)
        else:
            missed = ""
        for f in futs:
            f.set_result(None)
        await asyncio.gather(*tasks)
        return one, two, missed

    one, two, missed = asyncio.run(main())
    diff = first_difference(one, two)
    assert diff is not None
    assert "<locals>" in diff  # the coroutine's local ``n`` / ``local`` differ
    assert "a live task not reached" in missed


def _reads(root: Path, names: set[str]) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in names
                and isinstance(node.ctx, ast.Load)
            ):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: .{node.attr}")
    return found


def test_the_declared_counters_are_never_read_by_the_controller() -> None:
    """The counters the walk does not compare (``__fuseguard_counters__``: the chargers' energy
    registers, a sample's copy of it, the scenario adapter's write tally) must not feed any
    control or allocation decision: no attribute of that name is read in ``control/`` or
    ``allocation/`` (if one ever is, remove it from the counters: the day jump then refuses)."""
    from fuseguard.model.samples import ChargerSample
    from fuseguard.scenario.adapters import ConnectorCharger, SiteMeter
    from fuseguard.sim.chargepoint import ChargePoint

    names = {
        name
        for cls in (ChargePoint, ChargerSample, ConnectorCharger, SiteMeter)
        for name in getattr(cls, COUNTER_HOOK)
    }
    assert names == {"meter_wh", "phase_wh", "energy_wh", "writes", "reads"}
    assert _reads(SRC / "control", names) == []
    assert _reads(SRC / "allocation", names) == []


def test_the_controllers_own_counters_are_read_only_by_its_status() -> None:
    """The controller's diagnostics (``Controller.__fuseguard_counters__``) are read where they
    are counted and where the status view is built, nowhere else (a new read is a new use:
    review it, and drop the name from the counters if a decision ever depends on it)."""
    from fuseguard.control.controller import Controller

    names = set(getattr(Controller, COUNTER_HOOK))
    assert names == {"_cycles", "_last_cycle_ms"}
    reads = [r.split(":")[0] for r in _reads(SRC / "control", names)]
    assert reads == ["control/controller.py"] * 2  # the status view's two fields
