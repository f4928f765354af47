"""The markdown table of ``bench/ocpp.py`` (its section of docs/benchmarks.md) from its JSON row."""

from __future__ import annotations

from typing import Any


def _fmt(v: float | None, scale: float = 1.0, digits: int = 0) -> str:
    return "-" if v is None else f"{v * scale:.{digits}f}"


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def markdown(row: dict[str, Any], *, quick: bool) -> str:
    met = row["met"]
    tg = row["targets"]
    st = row["storm"]
    n = row["chargers"]
    load = ", ".join(f"{x:.2f}" for x in row["loadavg"])
    lines = [
        f"### OCPP: {n} virtual charge points on one edge (`bench/ocpp.py`)",
        "",
        f'A `fuseguard run` subprocess (virtual CEMM + {n} `driver = "ocpp"` chargers) and {n}'
        " `VirtualOcppStation`s on one site model over loopback (security profile 1, MeterValues"
        f" every {row['meter_interval_s']} s, lease {row['lease_s']} s, profile delay"
        f" {row['profile_delay_s']:.0f} s). Load average at the end (1/5/15 min): {load}"
        " (2 shared cores)." + (" Quick run: not for comparison." if quick else ""),
        "",
        "| measure | value | target | |",
        "|---|---|---|---|",
        f"| start-up (default `min_pause_s`): settled in (s); setpoints / pauses written"
        f" | {row['settle_s']:.1f}; {row.get('startup_setpoints', '-')} /"
        f" {row.get('startup_pauses', '-')} | | |",
        f"| meter: telegrams; `meter_unavailable` in the edge log after start-up"
        f" | {row.get('meter', 'irregular')}; {row.get('meter_unavailable_after_settle', '-')}"
        " | regular; 0 | |",
        f"| meter step -> lease Accepted, p50 / p99 / max (ms)"
        f" | {_fmt(row['profile_p50_s'], 1000)} / {_fmt(row['profile_p99_s'], 1000)}"
        f" / {_fmt(row['profile_max_s'], 1000)}"
        f" | p99 <= {tg['profile_p99_s'] * 1000:.0f} | {_met(met['profile_p99'])} |",
        f"| profiles Accepted / expected (at the setpoint)"
        f" | {row['profiles_accepted']} / {row['profiles_expected']}"
        f" ({row['profiles_at_setpoint']}) | all | |",
        f"| edge CPU over {row['footprint_window_s']:.0f} s idle (% of a core)"
        f" | {row['cpu_pct']:.1f} | <= {tg['cpu_pct']:.0f} | {_met(met['cpu'])} |",
        f"| edge RSS (MB) | {row['rss_mb']:.0f} | <= {tg['rss_mb']:.0f} | {_met(met['rss'])} |",
        f"| reconnect storm: booted / re-profiled | {st['booted']} / {st['reprofiled']} of {n}"
        " | all | |",
        f"| reconnect storm: p50 / all booted and re-profiled (s)"
        f" | {_fmt(st['p50_s'], 1, 1)} / {_fmt(st['all_s'], 1, 1)}"
        f" | <= {tg['storm_s']:.0f} | {_met(met['storm'])} |",
        "",
        "The step latency runs from the CEMM telegram that carries the new building load to the"
        " charge point's `Accepted` answer to the lease profile with the new limit (including the"
        " wait for the edge's next meter poll); the profile delay comes after"
        " that, when the charge point applies the limit. The storm counts from the moment every"
        " charge point reconnects (all at once) to the last one with a new BootNotification and"
        " both its safe and lease profiles Accepted.",
    ]
    return "\n".join(lines) + "\n"
