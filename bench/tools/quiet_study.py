"""Quiet stretches of a simulated run (issue 18 item 2, round 18 "quiet"): a study harness.

Runs one scenario tick by tick with the real controller and records, per decision, whether
anything observable changed (a setpoint or reason decided, a value written, a plug's status, the
allocator's answer), what ended each quiet stretch, the CPU of the decision and of everything
between two decisions, and, at the start of every quiet stretch (and every ``--stride``-th
decision), how long the base-load ramp could move before the integer setpoints change (the
allocation re-run on the same input with the main circuit's non-EV load moved along the
profile's slope). Optionally it walks the whole run's state at two consecutive quiet decisions
with cars charging and lists every field that differs (``--walk-at``).

Monkeypatching only (no source change). ``bench/notes/r18-quiet.md`` has the results.

    PYTHONPATH=src python bench/tools/quiet_study.py run office_20_chargers_24h /tmp/q/office.pkl
    PYTHONPATH=src python bench/tools/quiet_study.py run depot_200_chargers /tmp/q/depot.pkl \
        --duration-s 7200 --stride 30
    PYTHONPATH=src python bench/tools/quiet_study.py report /tmp/q/office.pkl
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import pickle
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: change bits of one decision against the one before
DECIDED, WRITTEN, STATUS, ALLOC = 1, 2, 4, 8
#: the stretch lengths (virtual s) the brief asks about
THRESHOLDS_S = (5, 10, 30, 60)
#: a number that counts time in a reason ("waiting 904 s", "offered again in 15 min", "3.2 kWh
#: needed"): masked in the second variant (a reason rendered from a deadline when read)
COUNTDOWN = re.compile(r"\d+(\.\d+)? ?(s|min|kWh)\b")
#: the longest ramp horizon searched (virtual s)
MAX_HORIZON_S = 4096.0


@dataclasses.dataclass
class Decision:
    t: float
    between_cpu: float  # CPU from the end of the previous decision to the start of this one
    decide_cpu: float
    bits: int  # what changed, countdowns in reasons masked (see COUNTDOWN)
    cause: str
    cars: int  # plugs with a vehicle connected
    non_ev: tuple[float, float, float]
    value_writes: int  # writes of a new value since the previous decision
    rewrites: int  # writes of the same value (the rewrite cadence)
    horizon_s: float | None = None  # ramp horizon (None: not computed here)
    strict_bits: int = 0  # what changed, reasons compared as they are


class Recorder:
    """The per-decision record (see module docstring)."""

    def __init__(self, profile: Any, stride: int, walk_at: float | None) -> None:
        self.profile = profile  # the base load's PiecewiseLinear points [(t, Phases)]
        self.stride = stride
        self.walk_at = walk_at
        self.out: list[Decision] = []
        self.exit_cpu = time.process_time()
        self.prev: dict[str, Any] | None = None
        self.full: Any = None
        self.alloc: Any = None
        self.value_writes = 0
        self.rewrites = 0
        self.run: Any = None
        self.walks: list[Any] = []
        self.walk_diff: dict[str, Any] | None = None
        self.sens_cpu = 0.0

    # --- per decision ---------------------------------------------------------------------

    def observe(self, ctl: Any, between: float, decide: float) -> None:
        from fuseguard.control.types import MAIN

        now = ctl._clock.monotonic()
        sps = ctl._writer._setpoints
        plugs = ctl._plugs
        samples = [p.reading.sample for p in plugs.values()]
        cur = {
            "decided": tuple((sp.setpoint_a, _mask(sp.reason)) for sp in sps.values()),
            "raw": tuple(sp.reason for sp in sps.values()),
            "written": tuple(sp.written_a for sp in sps.values()),
            "status": tuple(p.status for p in plugs.values()),
            "cp": tuple(None if s is None else s.cp_state for s in samples),
            "full": self.full,
            "alloc": self.alloc,
            "limit": ctl._limits.get(MAIN),
        }
        non_ev = ctl._non_ev.get(MAIN)
        ne = (non_ev.l1, non_ev.l2, non_ev.l3) if non_ev is not None else (0.0, 0.0, 0.0)
        prev = self.prev
        bits, cause, strict = 0, "", 0
        if prev is not None:
            bits = self._bits(prev, cur)
            strict = bits | (DECIDED if prev["raw"] != cur["raw"] else 0)
            pa, ca = prev["alloc"], cur["alloc"]
            if pa is not None and ca is not None and pa is not ca and pa.reasons != ca.reasons:
                strict |= ALLOC
            if bits:
                cause = self._cause(prev, cur, bits)
            elif strict:
                cause = "countdown in a reason only"
        cars = sum(1 for s in samples if s is not None and s.cp_state.vehicle_connected)
        d = Decision(now, between, decide, bits, cause, cars, ne, self.value_writes, self.rewrites)
        d.strict_bits = strict
        self.value_writes = self.rewrites = 0
        starts = bool(self.out) and self.out[-1].bits and not bits
        if cur["full"] is not None and (starts or len(self.out) % self.stride == 0):
            c0 = time.process_time()
            d.horizon_s = self._horizon(cur["full"], cur["alloc"], now)
            self.sens_cpu += time.process_time() - c0
        self.out.append(d)
        self.prev = cur
        self._maybe_walk(ctl, d)

    @staticmethod
    def _bits(prev: dict[str, Any], cur: dict[str, Any]) -> int:
        bits = 0
        if prev["decided"] != cur["decided"]:
            bits |= DECIDED
        if prev["written"] != cur["written"]:
            bits |= WRITTEN
        if prev["status"] != cur["status"]:
            bits |= STATUS
        pa, ca = prev["alloc"], cur["alloc"]
        if pa is not ca and (
            pa is None
            or ca is None
            or pa.setpoints != ca.setpoints
            or _masked(pa.reasons) != _masked(ca.reasons)
        ):
            bits |= ALLOC
        return bits

    def _cause(self, prev: dict[str, Any], cur: dict[str, Any], bits: int) -> str:
        if prev["cp"] != cur["cp"]:
            kinds = sorted(
                {
                    f"{_cp(a)}->{_cp(b)}"
                    for a, b in zip(prev["cp"], cur["cp"], strict=True)
                    if a != b
                }
            )
            return "car event " + ",".join(kinds)
        if bits & ALLOC:
            return self._alloc_cause(prev, cur)
        if bits & DECIDED:
            sp_prev = [s for s, _ in prev["decided"]]
            sp_cur = [s for s, _ in cur["decided"]]
            if sp_prev != sp_cur:
                moved = [
                    r
                    for (a, _), (b, r) in zip(prev["decided"], cur["decided"], strict=True)
                    if a != b
                ]
                return "policy after allocation: " + re.sub(r"\d+(\.\d+)?", "N", moved[0])[:60]
            return "reason text only: " + _reason_kind(prev["decided"], cur["decided"])
        if bits & WRITTEN:
            return "write landed"
        return "status only"

    def _alloc_cause(self, prev: dict[str, Any], cur: dict[str, Any]) -> str:
        """Which input moved the allocator's answer: counterfactual re-runs of the pure
        allocator on this decision's input with parts of the previous one put back."""
        from fuseguard.allocation import allocate

        pf, cf, pa = prev["full"], cur["full"], prev["alloc"]
        if pf is None or cf is None or pa is None:
            return "allocation (first)"
        if [p.id for p in pf.plugs] != [p.id for p in cf.plugs]:
            return "allocation (plug set)"

        def same(full: Any) -> bool:
            a = allocate(full)
            return bool(a.setpoints == pa.setpoints and _masked(a.reasons) == _masked(pa.reasons))

        loads = dataclasses.replace(cf, circuits=pf.circuits, pv_surplus_w=pf.pv_surplus_w)
        if same(loads):
            if prev["limit"] != cur["limit"]:
                return "limit change"
            step = max(
                abs(x - y)
                for c, d in zip(pf.circuits, cf.circuits, strict=True)
                for x, y in zip(c.non_ev_load_a, d.non_ev_load_a, strict=True)
            )
            return "non-EV step >= 1 A" if step >= 1.0 else "non-EV ramp crosses a threshold"
        old = {p.id: p for p in pf.plugs}
        timers = ("setpoint_a", "running_s", "paused_s", "pv_timer_s")
        plugs = tuple(
            dataclasses.replace(p, **{f: getattr(old[p.id], f) for f in timers}) for p in cf.plugs
        )
        t_full = dataclasses.replace(loads, plugs=plugs)
        if same(t_full):
            return "run/pause timers (rotation, min run/pause)"
        plugs2 = tuple(dataclasses.replace(p, share_a=old[p.id].share_a) for p in plugs)
        if same(dataclasses.replace(t_full, plugs=plugs2)):
            return "energy share (fairness order)"
        fields = sorted(
            {
                f.name
                for p in cf.plugs
                for f in dataclasses.fields(p)
                if f.name not in timers
                and f.name != "share_a"
                and getattr(p, f.name) != getattr(old[p.id], f.name)
            }
        )
        return "plug demand: " + ",".join(fields)

    # --- the ramp horizon -----------------------------------------------------------------

    def _slope(self, t: float) -> tuple[Any, float]:
        """The base load's slope (A/s per phase) at ``t`` and the time left in its segment."""
        pts = self.profile
        for (t0, v0), (t1, v1) in itertools.pairwise(pts):
            if t0 <= t < t1:
                return (v1 - v0) / (t1 - t0), t1 - t
        return pts[-1][1] * 0.0, math.inf

    def _horizon(self, full: Any, alloc: Any, t: float) -> float:
        """Seconds until the integer setpoints change if the main non-EV load moves along the
        profile's slope, all else held (inf: not within the segment or ``MAX_HORIZON_S``)."""
        from fuseguard.allocation import allocate
        from fuseguard.control.types import MAIN

        slope, left = self._slope(t)
        limit = min(left, MAX_HORIZON_S)
        base = alloc.setpoints

        def moved(dt: float) -> bool:
            circuits = tuple(
                dataclasses.replace(c, non_ev_load_a=c.non_ev_load_a + slope * dt)
                if c.id == MAIN
                else c
                for c in full.circuits
            )
            return bool(allocate(dataclasses.replace(full, circuits=circuits)).setpoints != base)

        lo, hi = 0.0, 1.0
        while hi < limit and not moved(hi):
            lo, hi = hi, hi * 2.0
        if hi >= limit:
            if not moved(limit):
                return math.inf
            hi = limit
        while hi - lo > 1.0:
            mid = (lo + hi) / 2.0
            lo, hi = (lo, mid) if moved(mid) else (mid, hi)
        return hi

    # --- the state walk -------------------------------------------------------------------

    def _maybe_walk(self, ctl: Any, d: Decision) -> None:
        if self.walk_at is None or self.walk_diff is not None or d.t < self.walk_at:
            return
        quiet = len(self.out) >= 3 and not any(x.bits for x in self.out[-3:])
        if not quiet or d.cars == 0:
            self.walks.clear()
            return
        self.walks.append(self._capture())
        if len(self.walks) == 2:
            self.walk_diff = diff_walks(*self.walks)
            self.walks.clear()

    def _capture(self) -> Any:
        import asyncio

        from fuseguard.scenario.statewalk import capture

        run = self.run
        loop = asyncio.get_running_loop()
        excluded = {
            id(run.clock): "virtual clock",
            id(run.time): "world timetable",
            id(run.jumper): "jump machinery",
            id(run.steady): "steady watch",
            id(run.sc): "scenario",
            id(run.cars): "scenario cars",
            id(run.specs): "scenario chargers",
            id(loop): "event loop",
            id(self): "this harness",
        }
        return capture([("run", run)], run.clock.monotonic(), excluded=excluded)


def _mask(reason: str) -> str:
    return COUNTDOWN.sub("N", reason)


def _masked(reasons: dict[str, str]) -> dict[str, str]:
    return {k: COUNTDOWN.sub("N", v) for k, v in reasons.items()}


def _cp(state: Any) -> str:
    return "none" if state is None else str(getattr(state, "value", state))


def _reason_kind(a: tuple[Any, ...], b: tuple[Any, ...]) -> str:
    for (_, ra), (_, rb) in zip(a, b, strict=True):
        if ra != rb:
            return re.sub(r"\d+(\.\d+)?", "N", rb)[:70]
    return "?"


def diff_walks(a: Any, b: Any) -> dict[str, Any]:
    """Every path whose value differs between two captures, grouped by path pattern: 'clock'
    (a time stamp that moved by exactly the clock shift) or 'value' (anything else)."""
    shift = b.clock_s - a.clock_s
    ea = {p: (k, v) for p, k, v in a.entries}
    eb = {p: (k, v) for p, k, v in b.entries}
    groups: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], str] = {}
    for path in ea.keys() | eb.keys():
        va, vb = ea.get(path), eb.get(path)
        if va is None or vb is None:
            kind = "added" if va is None else "removed"
        else:
            (ka, xa), (_kb, xb) = va, vb
            if ka == "array":
                same = xa.shape == xb.shape and bool((xa == xb).all())
            else:
                same = xa is xb or xa == xb
            if same:
                continue
            kind = (
                "clock"
                if isinstance(xa, float) and isinstance(xb, float) and xa + shift == xb
                else "value"
            )
        pattern = re.sub(r"\[\d+\]", "[*]", re.sub(r"cp\d+", "cp*", path))
        groups[(pattern, kind)] += 1
        examples.setdefault((pattern, kind), f"{path}: {str(va)[:60]} -> {str(vb)[:60]}")
    return {
        "shift_s": shift,
        "t_s": a.clock_s,
        "groups": [(p, k, n, examples[(p, k)]) for (p, k), n in sorted(groups.items())],
    }


# --- running ---------------------------------------------------------------------------------


def run(name: str, out: Path, duration_s: float | None, stride: int, walk_at: float | None) -> None:
    from fuseguard.allocation.session import AllocationSession
    from fuseguard.control.controller import Controller
    from fuseguard.control.writer import Writer
    from fuseguard.logging import configure_logging
    from fuseguard.scenario import runner
    from fuseguard.scenario.config import load_scenario

    configure_logging(level="error")
    sc = load_scenario(ROOT / "scenarios" / f"{name}.toml")
    if duration_s is not None:
        sc = sc.model_copy(update={"site": sc.site.model_copy(update={"duration_s": duration_s})})
    rec = Recorder(sc.base_load.profile(), stride, walk_at)
    decide, step, write, init = Controller.decide, AllocationSession.step, Writer.write, None

    def decide_w(self: Controller) -> None:
        c0 = time.process_time()
        decide(self)
        c1 = time.process_time()
        rec.observe(self, c0 - rec.exit_cpu, c1 - c0)
        rec.exit_cpu = time.process_time()

    def step_w(self: AllocationSession, snapshot: Any, now_s: float, held: Any = ()) -> Any:
        alloc = step(self, snapshot, now_s, held)
        rec.full, rec.alloc = self.last_input, alloc
        return alloc

    async def write_w(self: Writer, pid: str) -> None:
        before = self[pid].written_a
        await write(self, pid)
        if self[pid].written_a != before:
            rec.value_writes += 1
        else:
            rec.rewrites += 1

    init = runner._Run.__init__

    def init_w(run_: Any, *args: Any, **kwargs: Any) -> None:
        init(run_, *args, **kwargs)
        rec.run = run_

    Controller.decide = decide_w  # type: ignore[method-assign]
    AllocationSession.step = step_w  # type: ignore[method-assign]
    Writer.write = write_w  # type: ignore[method-assign]
    runner._Run.__init__ = init_w  # type: ignore[method-assign]
    c0 = time.process_time()
    try:
        result = runner.simulate(sc, "fuseguard", compute_optimum=False, keep_timeline=False)
    finally:
        Controller.decide = decide  # type: ignore[method-assign]
        AllocationSession.step = step  # type: ignore[method-assign]
        Writer.write = write  # type: ignore[method-assign]
        runner._Run.__init__ = init  # type: ignore[method-assign]
    total = time.process_time() - c0
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "scenario": name,
        "duration_s": sc.site.duration_s,
        "cpu_total_s": total,
        "sens_cpu_s": rec.sens_cpu,
        "jumped_s": result.jumped_s,
        "decisions": [dataclasses.astuple(d) for d in rec.out],
        "walk": rec.walk_diff,
        "energy_wh": result.report["energy_delivered_wh"]["total"],
    }
    out.write_bytes(pickle.dumps(data))
    print(f"{name}: {len(rec.out)} decisions, CPU {total:.1f} s (sensitivity {rec.sens_cpu:.1f} s)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("scenario")
    r.add_argument("out", type=Path)
    r.add_argument("--duration-s", type=float, default=None)
    r.add_argument("--stride", type=int, default=60)
    r.add_argument("--walk-at", type=float, default=None)
    rep = sub.add_parser("report")
    rep.add_argument("data", type=Path, nargs="+")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        run(args.scenario, args.out, args.duration_s, args.stride, args.walk_at)
    else:
        from quiet_report import report  # type: ignore[import-not-found]

        for path in args.data:
            report(pickle.loads(path.read_bytes()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
