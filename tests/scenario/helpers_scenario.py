"""Small scenario builders shared by the scenario tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import typer

from fuseguard.scenario.config import Scenario, parse_scenario
from fuseguard.scenario.runner import SimulationResult

#: Report fields that measure the host, not the simulated site.
HOST_FIELDS = frozenset({"wall_s", "sim_wall_s"})


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """The report without the fields that measure the host machine."""
    return {k: v for k, v in report.items() if k not in HOST_FIELDS}


#: the timeline arrays two runs that should agree are compared on
ARRAYS = ("t_s", "grid_a", "limit_a", "ev_a", "charger_a", "setpoint_a")


def same_numbers(a: SimulationResult, b: SimulationResult) -> None:
    """The two runs' reports (but for wall time) and every timeline array are equal."""
    assert comparable(a.report) == comparable(b.report)
    ta, tb = a.timeline, b.timeline
    assert ta is not None
    assert tb is not None
    assert ta.n == tb.n
    for key in ARRAYS:
        assert np.array_equal(getattr(ta, key)[: ta.n], getattr(tb, key)[: tb.n]), key


def timeline_bytes(result: SimulationResult) -> tuple[bytes, ...]:
    """The run's timeline arrays (grid, EV, charger, setpoint, limit) as bytes, to compare."""
    tl = result.timeline
    assert tl is not None
    return tuple(
        np.asarray(a[: tl.n]).tobytes()
        for a in (tl.grid_a, tl.ev_a, tl.charger_a, tl.setpoint_a, tl.limit_a)
    )


def tiny(
    *,
    fuse_a: float = 20,
    base: tuple[float, float, float] = (10, 10, 10),
    duration_s: float = 600,
    cars: list[dict[str, Any]] | None = None,
    chargers: list[dict[str, Any]] | None = None,
    events: list[dict[str, Any]] | None = None,
    site: dict[str, Any] | None = None,
    circuits: list[dict[str, Any]] | None = None,
    control: dict[str, Any] | None = None,
) -> Scenario:
    """A flat base load, one charger ``cp1`` (unless given) and the given cars."""
    data: dict[str, Any] = {
        "site": {"name": "tiny", "fuse_a": fuse_a, "duration_s": duration_s, **(site or {})},
        "base_load": {"points": [[0, list(base)]]},
        "chargers": chargers or [{"id": "cp1", "max_a": 32}],
        "cars": cars
        if cars is not None
        else [
            {
                "charger": "cp1",
                "arrive_s": 100,
                "depart_s": 400,
                "energy_wh": 100000,
                "max_a": 16,
            }
        ],
        "events": events or [],
        "circuits": circuits or [],
        "control": control or {},
    }
    return parse_scenario(data)


def simulate_app() -> typer.Typer:
    """A Typer app with only ``fuseguard simulate`` registered (for CliRunner)."""
    from fuseguard.cli.simulate import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """Test root."""

    return app
