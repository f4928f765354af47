"""Replay a window of a soak run with the timeline (``bench/notes/soak.md``, round 7).

The soak is deterministic per seed: the same scenario cut short after the window, with the same
meter quirks, cloud link and seeds, repeats the run up to there. Printed: the events and cars
around the window, the overload judgement up to its end, and one row per tick: the site's true
grid current, non-EV load, limit, every charger's current and setpoint, and (for ticks with a
decision) the grid meter's freshness and error and the non-EV load the controller used on main
(what the meter-loss fallback assumed while the meter was lost).

    python bench/soak_replay.py --seed 19 --at 73126 --before 400 --after 260
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import numpy as np
import soak  # bench/ modules (the script's own directory is on the path)
import soak_cloud
import soak_meter
import structlog

from fuseguard.control.controller import Controller
from fuseguard.model.circuits import MAIN
from fuseguard.scenario.config import parse_scenario
from fuseguard.scenario.runner import RunContext, simulate

Row = tuple[float, bool, str | None, tuple[float, ...]]


def _recording(lo: float, hi: float, rows: dict[int, Row]) -> Any:
    decide = Controller._decide

    def recorded(self: Controller, now: float) -> None:
        decide(self, now)
        if lo <= now <= hi:
            m = self._meter
            rows[round(now)] = (now, m.fresh(now), m.error, tuple(self._non_ev[MAIN]))

    return recorded


def _drop(_logger: Any, _method: str, _event: MutableMapping[str, Any]) -> Any:
    raise structlog.DropEvent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--at", type=float, required=True, help="the instant to look at (s)")
    ap.add_argument("--before", type=float, default=120.0)
    ap.add_argument("--after", type=float, default=300.0)
    ap.add_argument("--days", type=float, default=3.5)
    ap.add_argument("--meter", default="mixed")
    ap.add_argument("--phase-lock", choices=("on", "off"), default="on")
    a = ap.parse_args()
    data = soak.scenario_data(a.days, a.seed)
    lo, hi = a.at - a.before, a.at + a.after
    data["site"]["duration_s"] = hi + 1
    for e in data["events"]:
        if lo - 3600 <= e["at_s"] <= hi:
            print("event", e)
    for c in data["cars"]:
        if c["arrive_s"] <= hi and c["depart_s"] >= lo:
            print("car", c)
    sc = parse_scenario(data, "replay")
    rows: dict[int, Row] = {}
    structlog.configure(
        processors=[_drop], wrapper_class=structlog.make_filtering_bound_logger(logging.INFO)
    )
    stats = soak_cloud.CloudStats()

    async def cloud(ctx: RunContext) -> None:
        await soak_cloud.cloud_companion(ctx, stats, a.seed + 1000)

    quirks = soak_meter.parse_quirks(a.meter)
    lock = a.phase_lock == "on"
    original = Controller._decide
    Controller._decide = _recording(lo, hi, rows)  # type: ignore[method-assign]
    try:
        with soak_meter.soak_meter(lock, quirks, a.seed + 2000, soak_meter.MeterStats()):
            res = simulate(
                sc, "fuseguard", compute_optimum=False, keep_timeline=True, attach=cloud, jump=False
            )
    finally:
        Controller._decide = original  # type: ignore[method-assign]
    tl = res.timeline
    assert tl is not None
    judged = soak.judge_overload(tl, sc)
    print("overload", json.dumps(judged))
    print("chargers", tl.charger_ids)
    for i in range(tl.n):
        t = float(tl.t_s[i])
        if not lo <= t <= hi:
            continue
        grid, non_ev = tl.grid_a[i], tl.grid_a[i] - tl.ev_a[i]
        excess = float((grid - np.maximum(tl.limit_a[i], non_ev)).max())
        line = (
            f"t={t:.0f} grid={np.round(grid, 2)} non_ev={np.round(non_ev, 2)} "
            f"limit={tl.limit_a[i]:.1f} excess={excess:.2f} "
            f"charger_a={np.round(tl.charger_a[i], 1)} setpoint_a={np.round(tl.setpoint_a[i], 0)}"
        )
        row = rows.get(round(t))
        if row is not None:
            line += f" | meter fresh={row[1]} error={row[2]} used_non_ev={np.round(row[3], 2)}"
        sys.stdout.write(line + "\n")


if __name__ == "__main__":
    main()
