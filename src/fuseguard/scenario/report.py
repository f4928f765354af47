"""The report of one run (JSON-ready): what ``fuseguard simulate --report`` writes.

Keys and definitions in ``docs/scenarios.md``; the numbers come from the
:class:`~fuseguard.scenario.recorder.Recorder`.
"""

from __future__ import annotations

from typing import Any

from fuseguard.scenario.baselines import BASELINES
from fuseguard.scenario.config import Scenario
from fuseguard.scenario.metrics import MET_TOL, percentile
from fuseguard.scenario.recorder import Recorder

BASELINE_NOTE = (
    "re-implementation of documented behaviour (see fuseguard.scenario.baselines), "
    "not the project itself"
)


def rounded(x: float, nd: int = 3) -> float:
    """``x`` rounded for the report."""
    return round(float(x), nd)


def build_report(sc: Scenario, policy_name: str, rec: Recorder, wall_s: float) -> dict[str, Any]:
    """The report of a finished run."""
    rec.close_fairness_window()  # the last, partial window
    st = rec.state
    per_circuit = {
        c: {ph: rounded(v) for ph, v in zip(("L1", "L2", "L3"), vals, strict=True)}
        for c, vals in st.overload_as.items()
    }
    total_overload = sum(sum(v) for v in st.overload_as.values())
    reactions: list[float] = []
    unresolved = 0
    for ep in st.episodes:
        if ep.end_s is None:
            unresolved += 1
            reactions.append(sc.site.duration_s - ep.start_s)
        else:
            reactions.append(ep.end_s - ep.start_s)
    delivered = {name: rounded(t.delivered_wh, 1) for name, t in rec.tracks.items()}
    hours_present = {
        name: max(1e-9, (min(t.depart_s, sc.site.duration_s) - t.arrive_s) / 3600.0)
        for name, t in rec.tracks.items()
    }
    cycles = {name: t.cycles for name, t in rec.tracks.items()}
    cph = [cycles[n] / hours_present[n] for n in cycles]
    p50 = percentile(reactions, 50)
    p99 = percentile(reactions, 99)
    return {
        "scenario": sc.site.name,
        "policy": policy_name,
        "policy_note": BASELINE_NOTE if policy_name in BASELINES else "fuseguard controller",
        "duration_s": sc.site.duration_s,
        "overload_as": {"total": rounded(total_overload), "per_circuit": per_circuit},
        "max_overshoot_a": rounded(st.max_overshoot_a),
        "energy_delivered_wh": {"total": rounded(sum(delivered.values()), 1), "per_car": delivered},
        "unmet_wh": {
            name: rounded(t.unmet_wh if t.unmet_wh is not None else t.energy_wh, 1)
            for name, t in rec.tracks.items()
            if t.arrive_s < sc.site.duration_s
        },
        "jain_fairness": (
            rounded(st.jain_weighted / st.jain_weight, 4) if st.jain_weight > 0 else None
        ),
        "jain_samples": st.jain_samples,
        "jain_energy_share": (
            rounded(st.share_weighted / st.share_weight, 4) if st.share_weight > 0 else None
        ),
        "jain_energy_share_samples": st.share_samples,
        "departures": departures_report(sc, rec),
        "pause_resume_cycles": cycles,
        "max_cycles_per_car_hour": rounded(max(cph), 3) if cph else 0.0,
        "reaction_s": {
            "p50": None if p50 is None else rounded(p50, 1),
            "p99": None if p99 is None else rounded(p99, 1),
            "max": rounded(max(reactions), 1) if reactions else None,
            "count": len(reactions),
            "unresolved": unresolved,
        },
        "fallback": [
            {
                "device": f.device,
                "kind": f.kind,
                "at_s": f.start_s,
                "fallback_s": None if f.fallback_s is None else rounded(f.fallback_s, 1),
            }
            for f in rec.faults
        ],
        "wall_s": rounded(wall_s, 2),
    }


def met_by_departure(sc: Scenario, rec: Recorder) -> list[str]:
    """The announced cars (leaving within the run) whose need was met by their departure."""
    out = []
    for car in sc.cars:
        t = rec.tracks[car.name]
        if car.announce_departure and car.depart_s <= sc.site.duration_s:
            unmet = t.unmet_wh if t.unmet_wh is not None else t.energy_wh
            if unmet <= MET_TOL * t.energy_wh:
                out.append(car.name)
    return out


def departures_report(sc: Scenario, rec: Recorder) -> dict[str, Any] | None:
    """Needs met by departure (announced cars leaving within the run); None without any.
    ``optimum_met`` and ``vs_optimum`` are filled in by the caller (the offline MILP)."""
    announced = [
        c.name for c in sc.cars if c.announce_departure and c.depart_s <= sc.site.duration_s
    ]
    if not announced:
        return None
    met = met_by_departure(sc, rec)
    return {
        "announced": len(announced),
        "met": len(met),
        "unmet_cars": [n for n in announced if n not in met],
        "optimum_met": None,
        "vs_optimum": None,
    }


def planner_stats(solve_ms: list[float], failures: int) -> dict[str, Any]:
    """Count and wall time (ms) of the horizon planner's solves in a run, and its failures."""
    ms = sorted(solve_ms)
    if not ms:
        return {"solves": 0, "failures": failures}
    return {
        "solves": len(ms),
        "failures": failures,
        "median_ms": rounded(ms[len(ms) // 2], 1),
        "p95_ms": rounded(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 1),
        "max_ms": rounded(ms[-1], 1),
        "total_s": rounded(sum(ms) / 1000.0, 1),
    }


def add_planner_stats(report: dict[str, Any], policy: object) -> dict[str, Any]:
    """Add the horizon planner's solves (ms of wall time) when the policy's controller plans."""
    planner = getattr(getattr(policy, "controller", None), "planner", None)
    if planner is not None:
        report["planner"] = planner_stats(planner.solve_ms, planner.failures)
    return report


__all__ = [
    "BASELINE_NOTE",
    "add_planner_stats",
    "build_report",
    "departures_report",
    "met_by_departure",
    "planner_stats",
    "rounded",
]
