"""Setpoint changes per car-hour beside the quality figures, for fuseguard on chosen scenarios.

    python bench/setpoint_changes.py --only office_20_chargers_24h [...] [--jobs 2] [--out F.json]
                                     [--window T0 T1]

Counts every written limit that differs from the charger's previous one (``changes``) and the
``reversals`` among them: a change opposite in sign to the same charger's previous change within
``REVERSAL_S``, the 1 A flapping of issue 18 round 18 (``bench/notes/r18-flap.md``). Beside them
the report's overload, energy, optimality, Jain and max pause/resume per car-hour
(``bench/quality.py``'s run, the same optimum). ``--window T0 T1`` also counts the changes
between those site seconds (``window_changes``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality

REVERSAL_S = 30.0


def _counting(window: tuple[float, float]) -> dict[str, float]:
    """Patch the scenario charger adapter to count written changes and reversals."""
    from fuseguard.scenario.adapters import ConnectorCharger

    tally = {"changes": 0.0, "reversals": 0.0, "window_changes": 0.0}
    last: dict[str, tuple[float, int]] = {}  # charger -> (time, sign) of its previous change
    original: Callable[[ConnectorCharger, int], Awaitable[None]] = (
        ConnectorCharger.set_current_limit
    )

    async def counted(self: ConnectorCharger, current_a: int) -> None:
        before = self.last_written_a
        await original(self, current_a)
        if before is None or int(current_a) == before:
            return
        tally["changes"] += 1
        now_s = self.charge_point.now_s
        if window[0] <= now_s < window[1]:
            tally["window_changes"] += 1
        sign = 1 if current_a > before else -1
        prev = last.get(self.name)
        if prev is not None and prev[1] == -sign and now_s - prev[0] <= REVERSAL_S:
            tally["reversals"] += 1
        last[self.name] = (now_s, sign)

    ConnectorCharger.set_current_limit = counted  # type: ignore[method-assign]
    return tally


def _run(path: str, window: tuple[float, float] = (0.0, 0.0)) -> dict[str, Any]:
    from fuseguard.scenario.config import load_scenario

    tally = _counting(window)
    _, optimum = quality._optimum(path)
    rep = quality._run(path, "fuseguard", optimum)
    sc = load_scenario(Path(path))
    dur = sc.site.duration_s
    car_h = sum(max(0.0, min(c.depart_s, dur) - c.arrive_s) for c in sc.cars) / 3600.0
    if "error" in rep:
        return rep
    return {
        "scenario": rep["scenario"],
        "changes": int(tally["changes"]),
        "reversals": int(tally["reversals"]),
        "window_changes": int(tally["window_changes"]),
        "car_h": round(car_h, 2),
        "changes_per_car_h": round(tally["changes"] / car_h, 2) if car_h else None,
        "overload_as": rep["overload_as"]["total"],
        "energy_wh": rep["energy_delivered_wh"]["total"],
        "optimality": rep.get("optimality"),
        "jain": rep["jain_fairness"],
        "jain_share": rep.get("jain_energy_share"),
        "max_cycles_per_car_h": rep["max_cycles_per_car_hour"],
        "departures": rep.get("departures"),
        "wall_s": rep["wall_s"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, print one JSON line each and write them all to ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenarios", type=Path, default=quality.ROOT / "scenarios")
    ap.add_argument("--only", nargs="*", default=None, help="scenario file stems")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--window", type=float, nargs=2, default=(0.0, 0.0), metavar=("T0", "T1"))
    args = ap.parse_args(argv)
    files = sorted(args.scenarios.glob("*.toml"))
    if args.only:
        files = [f for f in files if f.stem in args.only]
    rows = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        paths = [str(f) for f in files]
        for row in pool.map(_run, paths, [tuple(args.window)] * len(paths)):
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
