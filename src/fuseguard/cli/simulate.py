"""``fuseguard simulate``: run a scenario in virtual time and report control quality."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

if TYPE_CHECKING:
    from fuseguard.scenario.jump import SimProgress

POLICY_HELP = "fuseguard | static | round_robin_30s | ten_second_equal"
#: wall seconds between two progress lines (a terminal's line is rewritten; a log gets lines)
PROGRESS_EVERY_S = (1.0, 10.0)


def virtual_time(seconds: float) -> str:
    """Virtual seconds as ``<days> d HH:MM`` (``0 d 00:00``)."""
    s = max(0, int(seconds))
    return f"{s // 86_400} d {s % 86_400 // 3600:02d}:{s % 3600 // 60:02d}"


def progress_printer(
    stream: TextIO, *, tty: bool, clock: Callable[[], float] = time.monotonic
) -> Callable[[SimProgress], None]:
    """A listener for ``simulate(progress=...)`` writing how far the run has got to ``stream``:
    on a terminal one line rewritten at most every second, else a line at most every 10 s."""
    every_s = PROGRESS_EVERY_S[0] if tty else PROGRESS_EVERY_S[1]
    start = clock()
    last = [start]

    def tell(p: SimProgress) -> None:
        now = clock()
        if now - last[0] < every_s and p.world_s < p.end_s:
            return
        last[0] = now
        share = 100.0 * p.world_s / p.end_s if p.end_s > 0 else 100.0
        text = f"simulated {virtual_time(p.world_s)} of {virtual_time(p.end_s)} ({share:.0f} %)"
        if p.days_jumped:
            text += f", {p.days_jumped} days jumped"
        elif p.jumped_s:
            text += f", {virtual_time(p.jumped_s)} jumped"
        text += f", {now - start:.0f} s"
        stream.write(f"\r{text}\033[K" if tty else text + "\n")
        if tty and p.world_s >= p.end_s:
            stream.write("\n")
        stream.flush()

    return tell


def simulate_command(
    scenario: Annotated[Path, typer.Argument(help="Scenario TOML file (docs/scenarios.md).")],
    *,
    report: Annotated[Path, typer.Option("--report", help="Write the JSON report here.")] = Path(
        "report.json"
    ),
    policy: Annotated[str, typer.Option("--policy", help=POLICY_HELP)] = "fuseguard",
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Draw the timeline (PNG) here.")
    ] = None,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Write the timeline (CSV, 1 row/s) here.")
    ] = None,
    days: Annotated[
        int | None,
        typer.Option(
            "--days",
            min=1,
            help="Repeat the scenario's day (at most 24 h) this many days (docs/scenarios.md).",
        ),
    ] = None,
    no_optimum: Annotated[
        bool, typer.Option("--no-optimum", help="Skip the offline-optimum LP.")
    ] = False,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Tell how far the run has got on stderr (default: when stderr is a terminal).",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug|info|warning|error")] = (
        "error"
    ),
) -> None:
    """Run SCENARIO against the real controller (or a baseline) in virtual time.

    Exits 0 when the run completed: quality is reported, not judged.
    """
    from fuseguard.logging import configure_logging
    from fuseguard.scenario.config import ScenarioError, load_scenario
    from fuseguard.scenario.days import repeat_days
    from fuseguard.scenario.output import write_csv, write_plot, write_report
    from fuseguard.scenario.runner import POLICIES, PolicyUnavailableError, simulate

    configure_logging(level=log_level)
    if policy not in POLICIES:
        typer.echo(f"fuseguard simulate: unknown policy {policy!r} ({POLICY_HELP})", err=True)
        raise typer.Exit(code=2)
    try:
        sc = load_scenario(scenario)
        if days is not None:
            sc = repeat_days(sc, days)
    except (OSError, ScenarioError) as err:
        typer.echo(f"fuseguard simulate: {err}", err=True)
        raise typer.Exit(code=2) from None
    try:
        tty = sys.stderr.isatty()
        show = tty if progress is None else progress
        result = simulate(
            sc,
            policy,
            compute_optimum=not no_optimum,
            keep_timeline=plot is not None or csv_path is not None,
            progress=progress_printer(sys.stderr, tty=tty) if show else None,
        )
    except (PolicyUnavailableError, ImportError) as err:
        typer.echo(f"fuseguard simulate: policy {policy!r} unavailable: {err}", err=True)
        raise typer.Exit(code=3) from None
    result.report["scenario_file"] = str(scenario)
    write_report(result.report, report)
    if result.timeline is not None:
        if csv_path is not None:
            write_csv(result.timeline, csv_path)
        if plot is not None:
            write_plot(result.timeline, plot, title=f"{sc.site.name or scenario.stem} — {policy}")
    _print_summary(sc.site.name or scenario.stem, result.report)


def _print_summary(title: str, report: dict[str, Any]) -> None:
    """The report's summary table on stdout."""
    from rich.console import Console
    from rich.table import Table

    from fuseguard.scenario.output import summary_rows

    table = Table(title=title, show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary_rows(report):
        table.add_row(key, value)
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to the root app."""
    app.command(name="simulate")(simulate_command)
