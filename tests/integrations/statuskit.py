"""A small site config and hand-made controller statuses for the integration tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fuseguard.config import FuseguardConfig
from fuseguard.control.types import ControllerStatus, PlugView
from fuseguard.model.phases import Phases
from fuseguard.model.status import PlugStatus

EVSE_A = "a" * 31 + "1"
PLUG_A = "b" * 31 + "1"
EVSE_B = "a" * 31 + "2"
PLUG_B1 = "b" * 31 + "2"
PLUG_B2 = "b" * 31 + "3"


def site_config(
    data_dir: Path, *, mqtt: dict[str, Any] | None = None, with_b: bool = True
) -> FuseguardConfig:
    """Edge ``it1``: main 32 A, a garage sub-circuit, charger ``wb1`` and two-plug ``wb2``."""
    chargers: list[dict[str, Any]] = [
        {"id": "wb1", "evse_uuid": EVSE_A, "circuit": "garage", "priority": 5,
         "plugs": [{"uuid": PLUG_A, "label": "Plug 1"}]},
    ]  # fmt: skip
    if with_b:
        chargers.append(
            {"id": "wb2", "evse_uuid": EVSE_B, "mode": "pv",
             "plugs": [{"uuid": PLUG_B1, "label": "Left"}, {"uuid": PLUG_B2, "label": "Right"}]}
        )  # fmt: skip
    data: dict[str, Any] = {
        "data_dir": str(data_dir),
        "site": {"edge_id": "it1", "name": "Test site", "main_fuse_a": 32,
                 "circuits": [{"id": "garage", "fuse_a": 25}]},
        "chargers": chargers,
        "api": {"local": {"enabled": False}, "modbus": {"enabled": False},
                "evse": {"enabled": False}},
    }  # fmt: skip
    if mqtt is not None:
        data["mqtt"] = mqtt
    return FuseguardConfig.model_validate(data)


def plug(pid: str, evse: str, circuit: str, **kw: Any) -> PlugView:
    """A plug view with sensible defaults."""
    base = PlugView(
        id=pid,
        evse_uuid=evse,
        plug_uuid=None,
        plug_label="Plug 1",
        circuit=circuit,
        status=PlugStatus.CHARGING,
        online=True,
        setpoint_a=16,
        written_a=16,
        reason="fair share",
        current_a=Phases(15.9, 16.0, 16.1),
        grid_current_a=Phases(15.9, 16.0, 16.1),
        power_w=11040.0,
        energy_wh=4321.0,
        stuck=False,
        error=None,
    )
    return replace(base, **kw)


def status(**kw: Any) -> ControllerStatus:
    """A status of the site above: wb1 charging in the garage, wb2 plugs idle/offline."""
    base = ControllerStatus(
        time=datetime(2026, 1, 1, tzinfo=UTC),
        meter_ok=True,
        meter_fallback=False,
        meter_sample=None,
        grid_current_a=Phases(20.0, 21.0, 22.0),
        grid_power_w=14500.0,
        main_limit_a=Phases(32.0, 32.0, 32.0),
        flex_fallback=False,
        limits_a={"main": Phases(32.0, 32.0, 32.0), "garage": Phases(25.0, 25.0, 25.0)},
        non_ev_load_a={"main": Phases(4.1, 5.0, 5.9), "garage": Phases(1.0, 1.0, 1.0)},
        plugs=(
            plug("wb1", EVSE_A, "garage"),
            plug(
                "wb2",
                EVSE_B,
                "main",
                status=PlugStatus.IDLE,
                setpoint_a=0,
                current_a=Phases(0, 0, 0),
                grid_current_a=Phases(0, 0, 0),
                power_w=0.0,
                energy_wh=None,
            ),
            plug(
                "wb2/2",
                EVSE_B,
                "main",
                status=PlugStatus.OFFLINE,
                online=False,
                error="connection refused",
                setpoint_a=0,
                current_a=Phases(0, 0, 0),
                grid_current_a=Phases(0, 0, 0),
                power_w=0.0,
            ),
        ),
        cycles=10,
        last_cycle_ms=3.5,
    )
    return replace(base, **kw)
