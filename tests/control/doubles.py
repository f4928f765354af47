"""Test doubles for the controller's parts: scripted devices and fact builders (no sockets).

``FakeCharger``/``FakeMeter`` in ``fakes.py`` simulate a site; the doubles here answer exactly
what a test scripts, so each part can be driven one call at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fuseguard.control.plug import PlugControl
from fuseguard.control.policies.facts import PlugFacts
from fuseguard.control.policies.handover import BreakBeforeMake
from fuseguard.control.reading import ChargerReading
from fuseguard.control.types import ChargerSpec, ControllerConfig
from fuseguard.control.writer import Setpoint
from fuseguard.model.circuits import CircuitSpec
from fuseguard.model.phases import ZERO, Phases
from fuseguard.model.samples import ChargerSample, MeterSample
from fuseguard.model.status import CpState

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def charger_sample(
    cp: CpState = CpState.C, current_a: Phases = ZERO, **kw: object
) -> ChargerSample:
    """A charger sample with the given CP state and per-terminal currents."""
    return ChargerSample(cp_state=cp, current_a=current_a, **kw)  # type: ignore[arg-type]


def meter_sample(
    current_a: Phases | None = ZERO, power_w: float | None = None, *, stale: bool = False
) -> MeterSample:
    """A meter sample; ``power_w`` defaults to the currents at 230 V."""
    if power_w is None:
        power_w = current_a.total * 230.0 if current_a is not None else 0.0
    return MeterSample(timestamp=T0, power_w=power_w, current_a=current_a, stale=stale)


def facts(
    *,
    now: float = 100.0,
    sample: ChargerSample | None = None,
    fresh: bool = True,
    grid_a: Phases | None = None,
    written_a: int | None = 16,
    changed_at: float = 0.0,
) -> PlugFacts:
    """Facts for one plug; ``grid_a`` defaults to the sample's currents (no rotation)."""
    if grid_a is None:
        grid_a = sample.current_a if sample is not None else ZERO
    return PlugFacts(
        now=now,
        sample=sample,
        fresh=fresh,
        grid_a=grid_a,
        written_a=written_a,
        changed_at=changed_at,
    )


def config(
    chargers: Sequence[ChargerSpec] = (), fuse_a: float = 32.0, **kw: object
) -> ControllerConfig:
    """A controller config with a single main circuit unless ``circuits`` is given."""
    circuits = kw.pop("circuits", [CircuitSpec("main", None, fuse_a)])
    return ControllerConfig(circuits=circuits, chargers=list(chargers), **kw)  # type: ignore[arg-type]


@dataclass
class ScriptedDevice:
    """A meter or charger whose every answer is scripted.

    ``answers`` are returned (or raised, when an exception) in order, the last one repeated;
    ``hang`` makes every call wait forever (until cancelled). Writes are recorded in ``writes``
    and fail with ``write_error`` when it is set.
    """

    answers: list[object] = field(default_factory=list)
    hang: bool = False
    write_error: BaseException | None = None
    write_hang: bool = False
    reads: int = 0
    writes: list[int] = field(default_factory=list)
    cancelled: int = 0

    async def _answer(self) -> object:
        self.reads += 1
        if self.hang:
            try:
                await asyncio.get_running_loop().create_future()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        answer = self.answers[0] if len(self.answers) == 1 else self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def read(self) -> object:
        return await self._answer()

    async def set_current_limit(self, current_a: int) -> None:
        if self.write_hang:
            await asyncio.get_running_loop().create_future()
        if self.write_error is not None:
            raise self.write_error
        self.writes.append(current_a)


def plug(**spec: object) -> PlugControl:
    """One plug ``cp1`` with the given spec fields, nothing read or written yet."""
    s = ChargerSpec(id="cp1", **spec)  # type: ignore[arg-type]
    cfg = config([s])
    return PlugControl(s, cfg, ChargerReading(s, cfg), Setpoint())


def handover() -> BreakBeforeMake:
    """A break-before-make state at the start of a cycle."""
    h = BreakBeforeMake(margin_a=1.0, grace_s=6.0)
    h.begin()
    return h


async def run_poller_for(poller: Any, clock: Any, seconds: float) -> None:
    """Run ``poller`` for ``seconds`` of ``clock``'s virtual time, then stop it."""
    task = asyncio.create_task(poller.run())
    try:
        await clock.advance(seconds)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def history(*changes: tuple[float, int]) -> Setpoint:
    """A writer's setpoint record with these (time, value) writes."""
    sp = Setpoint()
    for at, value in changes:
        sp.changes.append((at, value))
        sp.written_a, sp.changed_at = value, at
    return sp
