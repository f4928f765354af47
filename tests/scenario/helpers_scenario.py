"""Small scenario builders shared by the scenario tests."""

from __future__ import annotations

from typing import Any

import typer

from fuseguard.scenario.config import Scenario, parse_scenario


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
