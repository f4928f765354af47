"""A scripted OCPP 1.6 charge point (the ``ocpp`` library's own ChargePoint) and a central system
on a free loopback port."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import ClientConnection, connect

from fuseguard.devices.ocpp import OcppCentralSystem, OcppConnector, Station, StationConfig
from fuseguard.model.clock import RealClock

PASSWORD = "s3cret-ocpp-password"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class Script:
    """How the scripted charge point answers."""

    config: dict[str, str] = field(
        default_factory=lambda: {
            "SupportedFeatureProfiles": "Core,SmartCharging,RemoteTrigger",
            "ChargeProfileMaxStackLevel": "8",
            "ChargingScheduleAllowedChargingRateUnit": "Current",
            "MaxChargingProfilesInstalled": "10",
            "MeterValuesSampledData": "Energy.Active.Import.Register",
            "MeterValueSampleInterval": "60",
        }
    )
    profile_status: str = "Accepted"
    profile_delay_s: float = 0.0
    status: str = "Available"


class ScriptedChargePoint(ChargePoint):
    """Answers the central system as a charge point would; records what it was asked."""

    def __init__(self, identity: str, connection: Any, script: Script) -> None:
        super().__init__(identity, connection, response_timeout=5)
        self.script = script
        self.profiles: list[tuple[int, dict[str, Any]]] = []
        self.changed: dict[str, str] = {}
        self.profile_event = asyncio.Event()
        self.cleared: list[dict[str, Any]] = []

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        keys = key or list(self.script.config)
        known = [
            {"key": k, "readonly": False, "value": self.script.config[k]}
            for k in keys
            if k in self.script.config
        ]
        unknown = [k for k in keys if k not in self.script.config]
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, **_: Any) -> Any:
        self.changed[key] = value
        self.script.config[key] = value
        return call_result.ChangeConfiguration(status="Accepted")

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: Any, **_: Any
    ) -> Any:
        if self.script.profile_delay_s:
            await asyncio.sleep(self.script.profile_delay_s)
        self.profiles.append((connector_id, cs_charging_profiles))
        self.profile_event.set()
        return call_result.SetChargingProfile(status=self.script.profile_status)

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, **kwargs: Any) -> Any:
        self.cleared.append(kwargs)
        return call_result.ClearChargingProfile(status="Accepted")

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, connector_id: int, duration: int, **_: Any) -> Any:
        return call_result.GetCompositeSchedule(status="Rejected")

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, **_: Any) -> Any:
        return call_result.TriggerMessage(status="Accepted")

    @after(Action.trigger_message)
    async def after_trigger_message(
        self, requested_message: str, connector_id: int = 1, **_: Any
    ) -> None:
        if requested_message == "StatusNotification":
            await self.call(
                call.StatusNotification(
                    connector_id=connector_id, error_code="NoError", status=self.script.status
                )
            )

    def leases(self) -> list[dict[str, Any]]:
        return [
            p for _, p in self.profiles if "valid_to" in p and p["charging_profile_id"] > 1_000_000
        ]

    def safes(self) -> list[dict[str, Any]]:
        return [
            p
            for _, p in self.profiles
            if "valid_to" not in p and p["charging_profile_id"] > 1_000_000
        ]


@dataclass
class Site:
    server: OcppCentralSystem
    station: Station
    connectors: list[OcppConnector]

    def url(self, identity: str = "CP1") -> str:
        return f"{self.server.url}/{identity}"


class SteppedClock(RealClock):
    """Real time whose monotonic reading a test steps forward: lets a grace period that the
    station measures on it pass without waiting it out."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def monotonic(self) -> float:
        return super().monotonic() + self.offset_s


@contextlib.asynccontextmanager
async def central(**overrides: Any) -> AsyncIterator[Site]:
    """A central system with one station ``CP1`` on a free port."""
    allow_no_auth = overrides.pop("allow_no_auth", False)
    upstream = overrides.pop("upstream", None)
    spool_dir = overrides.pop("spool_dir", None)
    clock = overrides.pop("clock", None) or RealClock()
    server_keys = ("max_pending_connections", "max_pending_connections_per_peer", "open_timeout_s")
    limits = {k: overrides.pop(k) for k in server_keys if k in overrides}
    cfg = {
        "identity": "CP1",
        "password": PASSWORD,
        "connectors": 1,
        "phases": 3,
        "boot_wait_s": 0.5,
    }
    cfg.update(overrides)
    if upstream is not None:
        cfg["local_controller"] = True
    station = Station(StationConfig(**cfg), clock)
    server = OcppCentralSystem(
        {station.config.identity: station},
        host="127.0.0.1",
        port=0,
        allow_no_auth=allow_no_auth,
        upstream=upstream,
        spool_dir=spool_dir,
        **limits,
    )
    connectors = [OcppConnector(server, station, n) for n in station.connectors]
    for c in connectors:
        await c.start()
    try:
        yield Site(server, station, connectors)
    finally:
        for c in connectors:
            await c.close()


@contextlib.asynccontextmanager
async def charge_point(
    url: str,
    identity: str = "CP1",
    password: str | None = PASSWORD,
    script: Script | None = None,
    boot: bool = True,
) -> AsyncIterator[tuple[ScriptedChargePoint, ClientConnection]]:
    """A connected scripted charge point (booted unless ``boot`` is False)."""
    headers = {"Authorization": basic(identity, password)} if password is not None else {}
    async with connect(url, subprotocols=["ocpp1.6"], additional_headers=headers) as ws:  # type: ignore[list-item]
        cp = ScriptedChargePoint(identity, ws, script or Script())
        task = asyncio.create_task(cp.start())
        try:
            if boot:
                result = await cp.call(
                    call.BootNotification(
                        charge_point_model="Test", charge_point_vendor="fuseguard"
                    )
                )
                assert result.status == "Accepted"
            yield cp, ws
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.fixture
def script() -> Script:
    return Script()
