"""Writing a run's results: report JSON, timeline CSV, timeline plot, summary table."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from fuseguard.scenario.recorder import Timeline


def write_report(report: dict[str, Any], path: Path) -> None:
    """The report as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def write_csv(timeline: Timeline, path: Path, *, every_s: float = 1.0) -> None:
    """One row per tick (at most one per ``every_s``): grid and EV current per phase, the main
    limit in force, and each charger's draw and offered current."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        header = ["t_s", "grid_l1_a", "grid_l2_a", "grid_l3_a", "limit_a"]
        header += ["ev_l1_a", "ev_l2_a", "ev_l3_a"]
        header += [f"{cid}_a" for cid in timeline.charger_ids]
        header += [f"{cid}_offered_a" for cid in timeline.charger_ids]
        w.writerow(header)
        next_t = -1e18
        for i in range(timeline.n):
            t = float(timeline.t_s[i])
            if t + 1e-6 < next_t:
                continue
            next_t = t + every_s
            row: list[float] = [round(t, 3)]
            row += [round(float(v), 2) for v in timeline.grid_a[i]]
            row.append(round(float(timeline.limit_a[i]), 2))
            row += [round(float(v), 2) for v in timeline.ev_a[i]]
            row += [round(float(v), 2) for v in timeline.charger_a[i]]
            row += [round(float(v), 2) for v in timeline.setpoint_a[i]]
            w.writerow(row)


def write_plot(timeline: Timeline, path: Path, *, title: str = "", max_cars: int = 24) -> None:
    """Grid current per phase vs the limit in force (top) and each charger's current (bottom)."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    n = timeline.n
    t_h = timeline.t_s[:n] / 3600.0
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 7), sharex=True, constrained_layout=True)
    for p, colour in zip(range(3), ("tab:brown", "black", "tab:grey"), strict=True):
        ax1.plot(t_h, timeline.grid_a[:n, p], lw=0.8, color=colour, label=f"grid L{p + 1}")
    ax1.plot(t_h, timeline.limit_a[:n], lw=1.6, color="tab:red", ls="--", label="main limit")
    ax1.set_ylabel("current per phase (A)")
    ax1.legend(loc="upper right", fontsize=8, ncol=4)
    ax1.grid(alpha=0.3)
    ax1.set_title(title or "fuseguard simulate")
    k = min(len(timeline.charger_ids), max_cars)
    for j in range(k):
        ax2.plot(t_h, timeline.charger_a[:n, j], lw=0.8, label=timeline.charger_ids[j])
    if len(timeline.charger_ids) > k:
        ax2.text(
            0.01,
            0.95,
            f"first {k} of {len(timeline.charger_ids)} chargers",
            transform=ax2.transAxes,
            fontsize=8,
            va="top",
        )
    ax2.set_ylabel("car current per phase (A)")
    ax2.set_xlabel("site time (h)")
    ax2.grid(alpha=0.3)
    if k <= 12:
        ax2.legend(loc="upper right", fontsize=7, ncol=6)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The few numbers the terminal summary shows."""

    def fmt(v: Any, unit: str = "") -> str:
        if v is None:
            return "n/a"
        if isinstance(v, float):
            return f"{v:,.3g}{unit}" if abs(v) < 1000 else f"{v:,.0f}{unit}"
        return f"{v}{unit}"

    def _met(deps: Any) -> str:
        return (
            "-"
            if not deps
            else f"{deps['met']} of {deps['announced']} ({fmt(deps['optimum_met'])})"
        )

    reaction = report["reaction_s"]
    falls = report["fallback"]
    return [
        ("policy", str(report["policy"])),
        ("overload (EV, A·s)", fmt(report["overload_as"]["total"])),
        ("max overshoot (A)", fmt(report["max_overshoot_a"])),
        ("energy delivered (Wh)", fmt(report["energy_delivered_wh"]["total"])),
        ("offline optimum (Wh)", fmt(report.get("offline_optimum_wh"))),
        ("optimality", fmt(report.get("optimality"))),
        ("Jain fairness", fmt(report["jain_fairness"])),
        ("Jain by energy share", fmt(report.get("jain_energy_share"))),
        ("needs met by departure (optimum)", _met(report.get("departures"))),
        ("max pause/resume per car-hour", fmt(report["max_cycles_per_car_hour"])),
        ("reaction p50 / p99 (s)", f"{fmt(reaction['p50'])} / {fmt(reaction['p99'])}"),
        (
            "fallback (s) per fault",
            ", ".join(f"{f['device']}:{f['kind']}={fmt(f['fallback_s'])}" for f in falls) or "-",
        ),
        ("wall time (s)", fmt(report["wall_s"])),
    ]
