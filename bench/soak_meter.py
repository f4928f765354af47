"""The soak's grid meter as a CEMM, with the behaviours that could confuse the phase lock.

The scenario runner's meter (``SiteMeter``) answers with the site's newest tick, stamped with the
tick's own instant, and flags no repeat: the phase lock (``control/phase.py``) never gets a lower
bound from it and keeps plain polling. :class:`CemmLikeMeter` wraps it so that the soak exercises
the lock: the telegram of each site tick is published ``delay`` later (the meter's phase), stamped
with the meter's own clock (an offset from ours), and a telegram whose timestamp did not advance
is flagged ``stale`` (the CEMM driver's rule, ``devices/cemm/client.py``). On top of that, a
``quirk`` (several may be combined with ``+``):

* ``cemm``: just that (publication 370 ms after the tick, the meter's clock 1234.5 s behind ours);
* ``arrival``: a meter that stamps on arrival (Modbus): the newest values, stamped now, never stale;
* ``jitter``: every telegram published 0-250 ms later than its phase;
* ``late``: 3 % of the telegrams published 150-600 ms late (a lagging meter loop);
* ``rephase``: the meter restarts every 1-3 h: 5-40 s without answer, then a new publication
  phase (50-900 ms after the tick) and its clock off by up to +-3 s;
* ``clockjump``: the meter's clock steps by +-0.5-5 s every 2-4 h (NTP); a step back repeats
  timestamps (stale) until its clock catches up;
* ``mixed``: ``jitter+late+rephase+clockjump``.

The scenario's meter faults (offline, garbage, slow, frozen) still apply in every variant.
:func:`soak_meter` installs the wrapper (and forces ``meter_phase_lock`` on or off in the
controller's config) for the runs inside it.
"""

from __future__ import annotations

import dataclasses
import random
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import Any
from unittest import mock

from fuseguard.control.ports import DeviceConnectionError
from fuseguard.model.faults import DeviceFault
from fuseguard.model.samples import MeterSample

QUIRKS = ("none", "cemm", "arrival", "jitter", "late", "rephase", "clockjump", "mixed")
BASE_DELAY_S = 0.37
BASE_OFFSET_S = -1234.5


def parse_quirks(text: str) -> frozenset[str]:
    """``"jitter+late"`` -> the set of quirks (``mixed`` expanded); ``none`` -> empty."""
    parts = {p.strip() for p in text.split("+") if p.strip()}
    unknown = parts - set(QUIRKS)
    if unknown:
        msg = f"unknown meter quirk(s) {sorted(unknown)}; choose from {', '.join(QUIRKS)}"
        raise ValueError(msg)
    if "mixed" in parts:
        parts |= {"jitter", "late", "rephase", "clockjump"}
    return frozenset(parts - {"none", "mixed"})


@dataclasses.dataclass
class MeterStats:
    """What the wrapped meter did (into the soak's results)."""

    telegrams: int = 0
    late: int = 0
    restarts: int = 0
    clock_steps: int = 0
    clock_steps_back: int = 0
    answers: int = 0
    stale_answers: int = 0
    no_answer_restarting: int = 0
    reads: int = 0
    delays_s: list[float] = dataclasses.field(default_factory=list)  # the phases used
    #: publication -> the answer that first handed the telegram on (the edge's poll wait): a
    #: histogram in whole ms (the last bin: 2 s and more), so that memory does not grow
    waits_ms: list[int] = dataclasses.field(default_factory=lambda: [0] * 2001)

    def wait(self, seconds: float) -> None:
        self.waits_ms[min(2000, max(0, round(1000.0 * seconds)))] += 1

    def as_dict(self) -> dict[str, Any]:
        skip = ("delays_s", "waits_ms")
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}
        n = sum(self.waits_ms)
        if n:
            cum, marks = 0, {}
            for ms, count in enumerate(self.waits_ms):
                cum += count
                for q in (50, 90, 99, 100):
                    if f"p{q}" not in marks and cum >= n * q / 100:
                        marks[f"p{q}"] = ms
            marks["max"] = marks.pop("p100")
            out["poll_wait_ms"] = {"n": n, **marks, "over_500": sum(self.waits_ms[501:])}
        return out | {"phases_s": [round(d, 3) for d in self.delays_s[:20]]}


class CemmLikeMeter:
    """The scenario's grid meter (``inner``, a ``SiteMeter``) as a CEMM (module docstring)."""

    def __init__(self, inner: Any, quirks: frozenset[str], seed: int, stats: MeterStats) -> None:
        self.inner = inner
        self.name = inner.name
        self.clock = inner.clock
        self.quirks = quirks
        self.stats = stats
        self._rng = random.Random(seed)
        self._delay_s = BASE_DELAY_S
        self._offset_s = BASE_OFFSET_S
        stats.delays_s.append(self._delay_s)
        # (publication on our clock, the meter's timestamp, the tick's sample), oldest first
        self._published: deque[tuple[float, float, MeterSample]] = deque(maxlen=8)
        self._last_ts: float | None = None  # the newest timestamp answered (the driver's)
        self._last: MeterSample | None = None
        self._down_until = -1.0
        self._next_restart = self._rng.uniform(3600, 3 * 3600)
        self._next_step = self._rng.uniform(2 * 3600, 4 * 3600)
        self._start = inner._start  # the virtual wall clock at site time 0
        inner.site.on_tick(self._on_tick)

    @property
    def fault(self) -> DeviceFault | None:
        return self.inner.fault  # type: ignore[no-any-return]

    def set_fault(self, kind: DeviceFault | str | None) -> None:
        self.inner.set_fault(kind)

    def _on_tick(self, t_s: float) -> None:
        """The site ticked: the meter measured; its telegram goes out after its delay."""
        rng, q = self._rng, self.quirks
        if "rephase" in q and t_s >= self._next_restart:
            self._next_restart = t_s + rng.uniform(3600, 3 * 3600)
            self._down_until = t_s + rng.uniform(5, 40)
            self._delay_s = rng.uniform(0.05, 0.9)
            self._offset_s += rng.uniform(-3, 3)
            self.stats.restarts += 1
            self.stats.delays_s.append(self._delay_s)
        if "clockjump" in q and t_s >= self._next_step:
            self._next_step = t_s + rng.uniform(2 * 3600, 4 * 3600)
            step = rng.choice([-1, 1]) * rng.uniform(0.5, 5.0)
            self._offset_s += step
            self.stats.clock_steps += 1
            self.stats.clock_steps_back += step < 0
        delay = self._delay_s + (rng.uniform(0.0, 0.25) if "jitter" in q else 0.0)
        if "late" in q and rng.random() < 0.03:
            delay += rng.uniform(0.15, 0.6)
            self.stats.late += 1
        if t_s < self._down_until:
            return  # restarting: it measures nothing
        pub = t_s + min(delay, 0.98)
        if self._published:  # a meter publishes in order
            pub = max(pub, self._published[-1][0])
        sample = self.inner._telegram()  # the tick's values, no fault applied
        self._published.append((pub, t_s + self._offset_s, sample))
        self.stats.telegrams += 1

    def _newest(self, now: float) -> tuple[float, float, MeterSample] | None:
        for item in reversed(self._published):
            if item[0] <= now:
                return item
        return None

    async def read(self) -> MeterSample:
        """The newest telegram published by now, as the CEMM driver hands it on."""
        fault = self.inner.fault
        now = self.clock.monotonic()
        self.stats.reads += 1
        if fault in (DeviceFault.OFFLINE, DeviceFault.GARBAGE):
            raised: MeterSample = await self.inner.read()  # (it raises)
            return raised
        if now < self._down_until:
            self.stats.no_answer_restarting += 1
            msg = f"{self.name}: meter restarting (simulated)"
            raise DeviceConnectionError(msg)
        if fault is DeviceFault.FROZEN and self._last is not None:
            return dataclasses.replace(self._last, stale=True)
        if "arrival" in self.quirks:
            values: MeterSample = self.inner._telegram()
            return dataclasses.replace(values, timestamp=self.clock.now())
        newest = self._newest(now)
        if fault is DeviceFault.SLOW:  # taken when asked, delivered late
            await self.clock.sleep(self.inner.slow_delay_s)
        if newest is None:
            msg = f"{self.name}: no telegram yet (simulated)"
            raise DeviceConnectionError(msg)
        pub, ts, values = newest
        stale = self._last_ts is not None and ts <= self._last_ts
        if not stale:
            self._last_ts = ts
            if fault is None:
                self.stats.wait(self.clock.monotonic() - pub)
        self.stats.answers += 1
        self.stats.stale_answers += stale
        sample = dataclasses.replace(
            values, timestamp=self._start + timedelta(seconds=ts), stale=stale
        )
        self._last = sample
        return sample


@contextmanager
def soak_meter(
    phase_lock: bool | None, quirks: frozenset[str], seed: int, stats: MeterStats
) -> Iterator[None]:
    """Inside: the scenario's grid meter is a :class:`CemmLikeMeter` with ``quirks`` (none: the
    plain ``SiteMeter``), and the controller's ``meter_phase_lock`` is ``phase_lock`` (None:
    the config's default)."""
    from fuseguard.scenario import fuseguard_policy
    from fuseguard.scenario.meters import ScenarioMeters
    from fuseguard.scenario.site import scenario_controller_config as translate

    with ExitStack() as stack:
        if phase_lock is not None:

            def config(sc: Any) -> Any:
                return dataclasses.replace(translate(sc), meter_phase_lock=phase_lock)

            stack.enter_context(
                mock.patch.object(fuseguard_policy, "scenario_controller_config", config)
            )
        if quirks:
            build = ScenarioMeters.build

            def wrapped(sc: Any, site: Any, pv: Any, clock: Any) -> ScenarioMeters:
                meters = build(sc, site, pv, clock)
                meters.grid = CemmLikeMeter(meters.grid, quirks, seed, stats)  # type: ignore[assignment]
                return meters

            stack.enter_context(mock.patch.object(ScenarioMeters, "build", wrapped))
        yield


__all__ = ["QUIRKS", "CemmLikeMeter", "MeterStats", "parse_quirks", "soak_meter"]
