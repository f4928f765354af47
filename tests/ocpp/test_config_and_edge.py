"""``[api.ocpp]`` and ``driver = "ocpp"`` in the site config, and the real controller driving an
OCPP charge point through a whole edge."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call
from pydantic import ValidationError

from fuseguard.config import FuseguardConfig, check_config
from fuseguard.devices.factory import build_chargers
from fuseguard.devices.ocpp import OcppConnector
from fuseguard.edge import Edge
from fuseguard.model.clock import RealClock
from fuseguard.model.phases import Phases
from fuseguard.model.samples import MeterSample

from ..edge.timing import shorten_raise_hold
from .conftest import PASSWORD, charge_point, wait_for

TOML = """
[site]
edge_id = "garage"
main_fuse_a = 32

[api.ocpp]
port = 9000
lease_s = 30

[[chargers]]
id = "bay-4"
evse_uuid = "{e}"
driver = "ocpp"
ocpp_id = "CP004"
ocpp_password = "{pw}"
max_current_a = 32
safe_current_a = 6
  [[chargers.plugs]]
  uuid = "{p1}"
  label = "left"
  [[chargers.plugs]]
  uuid = "{p2}"
  label = "right"
"""


def _toml(**fmt: str) -> str:
    values = {"e": "a" * 32, "pw": PASSWORD, "p1": "b" * 32, "p2": "c" * 32} | fmt
    return TOML.format(**values)


def test_config_with_the_issue_names_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(_toml())
    assert check_config(path) == []


def _cfg(
    chargers: list[dict[str, Any]], ocpp: dict[str, Any] | None = None, **api: Any
) -> FuseguardConfig:
    return FuseguardConfig.model_validate(
        {
            "site": {"edge_id": "e", "main_fuse_a": 32},
            "chargers": chargers,
            "api": {"ocpp": ocpp or {}, **api},
        }
    )


def _ch(i: int, **kw: Any) -> dict[str, Any]:
    base = {"id": f"c{i}", "evse_uuid": f"{i:032x}", "driver": "ocpp", "ocpp_id": f"CP{i}",
            "ocpp_password": PASSWORD, "plugs": [{"uuid": f"{i + 100:032x}", "label": "P"}]}  # fmt: skip
    return base | kw


@pytest.mark.parametrize(
    ("chargers", "ocpp", "match"),
    [
        ([_ch(1, ocpp_id=None)], None, "needs ocpp_id"),
        ([_ch(1, ocpp_id="CP/1")], None, "printable"),
        ([_ch(1, ocpp_password=None)], None, "ocpp_password is needed"),
        ([_ch(1), _ch(2, ocpp_id="CP1")], None, "used twice"),
        ([_ch(1)], {"upstream": "https://backend.example/ocpp"}, "ws:// or wss://"),
        ([_ch(1)], {"tls": True, "cert_file": "/etc/x.crt"}, "cert_file and key_file"),
        ([_ch(1)], {"lease_s": 1}, "greater than or equal"),
    ],
)
def test_config_problems(
    chargers: list[dict[str, Any]], ocpp: dict[str, Any] | None, match: str
) -> None:
    with pytest.raises(ValidationError, match=match):
        _cfg(chargers, ocpp)


def test_no_password_only_with_the_switch() -> None:
    cfg = _cfg([_ch(1, ocpp_password=None)], {"allow_no_auth": True})
    assert cfg.chargers[0].ocpp_password is None


def test_factory_builds_one_connector_per_plug_on_one_server() -> None:
    cfg = _cfg(
        [
            _ch(1, plugs=[{"uuid": "d" * 32, "label": "A"}, {"uuid": "e" * 32, "label": "B"}]),
            _ch(2, safe_current_a=0),
        ],
        {"port": 0},
    )
    drivers = build_chargers(cfg, None, RealClock())  # type: ignore[arg-type]  # no HTTP session needed
    assert list(drivers) == ["c1", "c1/2", "c2"]
    conns = [d for d in drivers.values() if isinstance(d, OcppConnector)]
    assert len(conns) == 3
    assert len({id(c.server) for c in conns}) == 1
    assert [c.connector_id for c in conns] == [1, 2, 1]
    assert conns[0].station.config.safe_current_a == 6  # OCPP default
    assert conns[2].station.config.safe_current_a == 0  # 0 A allowed when asked for
    assert conns[0].station.config.phases == 3


class FakeMeter:
    """A grid meter whose per-phase current the test sets."""

    def __init__(self, clock: RealClock) -> None:
        self.clock = clock
        self.current = Phases(4, 4, 4)

    async def read(self) -> MeterSample:
        return MeterSample(
            timestamp=self.clock.now(), power_w=self.current.total * 230, current_a=self.current
        )


async def test_the_controller_drives_an_ocpp_charge_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shorten_raise_hold(monkeypatch)  # the car starts at 6 A: its raise to 16 A comes sooner
    clock = RealClock()
    cfg = FuseguardConfig.model_validate(
        {
            "data_dir": str(tmp_path),
            "site": {"edge_id": "garage", "main_fuse_a": 32},
            "chargers": [_ch(1, max_current_a=16)],
            # 6 A -> 16 A in one raise (4 A/s took two, 2 s apart)
            "control": {"min_run_s": 0, "min_pause_s": 0, "ramp_up_a_per_s": 10},
            "api": {"ocpp": {"host": "127.0.0.1", "port": 0},
                    "local": {"enabled": False}, "modbus": {"enabled": False},
                    "evse": {"enabled": False}},
        }
    )  # fmt: skip
    drivers = build_chargers(cfg, None, clock)  # type: ignore[arg-type]
    conn = drivers["c1"]
    assert isinstance(conn, OcppConnector)
    meter = FakeMeter(clock)
    edge = Edge(cfg, clock, meter=meter, chargers=drivers)
    task = asyncio.create_task(edge.run())
    try:
        await asyncio.wait_for(edge.ready.wait(), 15)
        async with charge_point(f"{conn.server.url}/CP1") as (cp, _):
            await wait_for(conn.station.ready.is_set)
            await cp.call(
                call.StatusNotification(connector_id=1, error_code="NoError", status="Charging")
            )
            # the controller offers the car its max (16 A) through the lease profile
            await wait_for(lambda: any(_limit(p) == 16.0 for p in cp.leases()), 10)
            # the building load rises: 26 A + the car's 16 A trip the 32 A fuse (the grid meter
            # sees both; the charge point sends no MeterValues, so the controller expects the
            # car at its limit up to its minimum, 6 A, and counts the rest as building load)
            meter.current = Phases(26 + 16, 26 + 16, 26 + 16)
            await wait_for(lambda: _limit(cp.leases()[-1]) <= 6.0, 10)
            assert edge.controller is not None
            (plug,) = edge.controller.status().plugs
            assert plug.status in ("charging", "recently_started_charging")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert conn.server._server is None  # the edge closed the drivers, the last one the server


def _limit(profile: dict[str, Any]) -> float:
    return float(profile["charging_schedule"]["charging_schedule_period"][0]["limit"])


def test_the_ocpp_example_config_is_valid() -> None:
    path = Path(__file__).parents[2] / "examples" / "ocpp.toml"
    assert check_config(path) == []
