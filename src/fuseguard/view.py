"""A live terminal view of an edge (rich): grid per phase vs limit, and each plug."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from fuseguard.api.site_state import explained_reason
from fuseguard.control.controller import ControllerStatus
from fuseguard.edge import Edge


def _bar(value: float, limit: float, width: int = 24) -> Text:
    frac = 0.0 if limit <= 0 else max(0.0, min(1.0, value / limit))
    filled = round(frac * width)
    colour = "green" if frac < 0.85 else "yellow" if frac <= 1.0 else "red"
    return Text("█" * filled + "·" * (width - filled), style=colour)


def render(status: ControllerStatus, sim_grid_a: Any | None, info: dict[str, Any]) -> Group:
    """One frame of the view."""
    grid = Table(title="Grid connection", expand=True)
    grid.add_column("phase")
    grid.add_column("measured A", justify="right")
    if sim_grid_a is not None:
        grid.add_column("true A (sim)", justify="right")
    grid.add_column("limit A", justify="right")
    grid.add_column("non-EV A", justify="right")
    grid.add_column("")
    non_ev = status.non_ev_load_a.get("main")
    for i, name in enumerate(("L1", "L2", "L3")):
        row = [name, f"{status.grid_current_a[i]:.1f}"]
        if sim_grid_a is not None:
            row.append(f"{sim_grid_a[i]:.1f}")
        row += [
            f"{status.main_limit_a[i]:.0f}",
            f"{non_ev[i]:.1f}" if non_ev is not None else "-",
        ]
        shown = sim_grid_a[i] if sim_grid_a is not None else status.grid_current_a[i]
        grid.add_row(*row, _bar(shown, status.main_limit_a[i]))
    plugs = Table(title="Plugs", expand=True)
    for col in ("plug", "status", "setpoint A", "I1/I2/I3 A", "reason"):
        plugs.add_column(col, overflow="fold")
    for p in status.plugs:
        plugs.add_row(
            p.id,
            p.status.value,
            str(p.setpoint_a),
            "/".join(f"{v:.1f}" for v in p.current_a),
            explained_reason(p.reason, status),
        )
    flags = []
    if status.meter_fallback:
        flags.append("[red]METER FALLBACK[/red]")
    if status.flex_fallback:
        flags.append("[yellow]EMS keep-alive expired: FallbackCurrentLimit[/yellow]")
    local = info.get("local_api", {})
    footer = Text.from_markup(
        f"local API {local.get('url', '-')} (user {local.get('user', '-')}, password "
        f"{local.get('password', '-')})   cycle {status.cycles}  {status.last_cycle_ms:.1f} ms   "
        + "  ".join(flags)
    )
    return Group(Panel(grid), Panel(plugs), footer)


async def live_view(
    edge: Edge,
    site: Any,
    info: dict[str, Any],
    edge_task: asyncio.Task[None],
    duration_s: float | None,
) -> None:
    """Redraw twice a second until the edge stops (or ``duration_s`` passes)."""
    assert edge.controller is not None
    controller = edge.controller
    loop = asyncio.get_running_loop()
    end = None if duration_s is None else loop.time() + duration_s
    with Live(render(controller.status(), site.current_a(), info), refresh_per_second=4) as live:
        while not edge_task.done() and (end is None or loop.time() < end):
            live.update(render(controller.status(), site.current_a(), info))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(edge_task), 0.5)
    if edge_task.done() and not edge_task.cancelled():
        edge_task.result()
