"""End to end over loopback: boot, configuration, status, meter values, safe + lease profiles."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from ocpp.v16 import call

from fuseguard.control.ports import (
    Charger,
    DeviceConnectionError,
    DeviceResponseError,
    SupportsLifecycle,
)
from fuseguard.model.phases import Phases
from fuseguard.model.status import CpState, OcppState, PlugStatus, plug_status

from .conftest import Script, SteppedClock, central, charge_point, wait_for


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_connector_is_a_charger_with_lifecycle() -> None:
    async with central() as site:
        conn = site.connectors[0]
        assert isinstance(conn, Charger)
        assert isinstance(conn, SupportsLifecycle)
        with pytest.raises(DeviceConnectionError, match="not connected"):
            await conn.read()


async def test_boot_configures_meter_values_and_installs_safe_profile() -> None:
    async with (
        central(safe_current_a=6, meter_interval_s=10) as site,
        charge_point(site.url()) as (cp, _),
    ):
        await wait_for(site.station.ready.is_set)
        assert cp.changed == {
            "MeterValuesSampledData": "Current.Import,Current.Offered,Power.Active.Import,Energy.Active.Import.Register",
            "MeterValueSampleInterval": "10",
        }
        (safe,) = cp.safes()
        assert safe["charging_profile_purpose"] == "TxDefaultProfile"
        assert safe["charging_profile_kind"] == "Absolute"
        assert "valid_to" not in safe  # permanent
        period = safe["charging_schedule"]["charging_schedule_period"]
        assert period == [{"start_period": 0, "limit": 6.0, "number_phases": 3}]
        assert safe["charging_schedule"]["charging_rate_unit"] == "A"
        assert site.station.cp_config is not None
        assert site.station.cp_config.max_stack_level == 8
        # the trigger made the charge point report its status: the controller can read at once
        await wait_for(lambda: site.station.connectors[1].cp_state is not None)
        sample = await site.connectors[0].read()
        assert sample.cp_state is CpState.A
        assert sample.ocpp_state is OcppState.AVAILABLE
        assert sample.errors == ()


async def test_status_and_meter_values_become_a_charger_sample() -> None:
    async with central() as site, charge_point(site.url()) as (cp, _):
        await wait_for(site.station.ready.is_set)
        await cp.call(
            call.StatusNotification(connector_id=1, error_code="NoError", status="Charging")
        )
        tx = await cp.call(
            call.StartTransaction(
                connector_id=1, id_tag="TAG1", meter_start=1000, timestamp="2026-01-05T00:00:00Z"
            )
        )
        assert tx.id_tag_info["status"] == "Accepted"
        sampled = [
            {"value": "15.9", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
            {"value": "16.1", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
            {"value": "15.7", "measurand": "Current.Import", "phase": "L3", "unit": "A"},
            {"value": "16", "measurand": "Current.Offered", "unit": "A"},
            {"value": "11.0", "measurand": "Power.Active.Import", "unit": "kW"},
            {"value": "1.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
        ]
        await cp.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=tx.transaction_id,
                meter_value=[{"timestamp": "2026-01-05T00:00:10Z", "sampledValue": sampled}],
            )
        )
        sample = await site.connectors[0].read()
        assert sample.cp_state is CpState.C
        assert sample.ocpp_state is OcppState.CHARGING
        assert sample.current_a == Phases(15.9, 16.1, 15.7)
        assert sample.signalled_current_a == 16.0
        assert sample.power_w == 11000.0
        assert sample.energy_wh == 1500.0
        assert sample.session_energy_wh == 500.0
        assert sample.phases_in_use == 3
        assert sample.id_tag == "TAG1"  # the session's idTag reaches the dashboard's sessions
        assert (
            plug_status(online=True, cp=sample.cp_state, ocpp=sample.ocpp_state)
            is PlugStatus.CHARGING
        )
        await cp.call(
            call.StopTransaction(
                meter_stop=1600, timestamp="2026-01-05T01:00:00Z", transaction_id=tx.transaction_id
            )
        )
        await cp.call(
            call.StatusNotification(connector_id=1, error_code="NoError", status="Finishing")
        )
        sample = await site.connectors[0].read()
        assert sample.current_a == Phases()
        assert sample.id_tag is None
        assert (
            plug_status(online=True, cp=sample.cp_state, ocpp=sample.ocpp_state)
            is PlugStatus.STOPPED
        )


async def test_limit_change_installs_lease_profile_above_the_safe_one() -> None:
    async with central(lease_s=60) as site, charge_point(site.url()) as (cp, _):
        await wait_for(site.station.ready.is_set)
        before = datetime.now().astimezone()
        await site.connectors[0].set_current_limit(16)
        (lease,) = cp.leases()
        assert lease["stack_level"] == 1
        assert lease["charging_profile_purpose"] == "TxDefaultProfile"
        assert lease["charging_schedule"]["charging_schedule_period"][0]["limit"] == 16.0
        assert "valid_from" not in lease  # valid as soon as received
        assert abs((_ts(lease["valid_to"]) - before).total_seconds() - 60) < 5
        # the schedule started before now even for a charge point whose clock lags ours
        assert _ts(lease["charging_schedule"]["start_schedule"]) < before
        # the same limit again within the renewal interval: nothing sent
        await site.connectors[0].set_current_limit(16)
        assert len(cp.leases()) == 1
        # a change is sent at once; 0 A pauses
        await site.connectors[0].set_current_limit(0)
        assert [
            p["charging_schedule"]["charging_schedule_period"][0]["limit"] for p in cp.leases()
        ] == [16.0, 0.0]
        assert len({p["charging_profile_id"] for p in cp.leases()}) == 1  # replaced, not stacked
        await wait_for(lambda: site.station.connectors[1].cp_state is not None)
        assert (await site.connectors[0].read()).limit_a == 0.0


async def test_lease_is_renewed_before_it_ends() -> None:
    async with central(lease_s=1.5) as site, charge_point(site.url()) as (cp, _):
        await wait_for(site.station.ready.is_set)
        await site.connectors[0].set_current_limit(10)
        await wait_for(lambda: len(cp.leases()) >= 3, timeout_s=6)
        ends = [_ts(p["valid_to"]) for p in cp.leases()]
        assert ends == sorted(ends)
        assert ends[-1] > ends[0]
        assert all(
            p["charging_schedule"]["charging_schedule_period"][0]["limit"] == 10.0
            for p in cp.leases()
        )


async def test_limit_written_before_connect_is_installed_at_setup() -> None:
    async with central() as site:
        with pytest.raises(DeviceConnectionError):
            await site.connectors[0].set_current_limit(12)
        async with charge_point(site.url()) as (cp, _):
            await wait_for(site.station.ready.is_set)
            assert [
                p["charging_schedule"]["charging_schedule_period"][0]["limit"] for p in cp.leases()
            ] == [12.0]


async def test_rejected_profiles_are_reported_as_errors() -> None:
    script = Script(profile_status="Rejected")
    async with central() as site, charge_point(site.url(), script=script) as (_cp, _):
        await wait_for(site.station.ready.is_set)
        await wait_for(lambda: site.station.connectors[1].cp_state is not None)
        sample = await site.connectors[0].read()
        assert any("safe profile refused (Rejected)" in e for e in sample.errors)
        assert sample.uncontrollable is not None and "refused" in sample.uncontrollable
        with pytest.raises(DeviceResponseError, match="refused"):
            await site.connectors[0].set_current_limit(16)
        assert (
            plug_status(online=True, cp=sample.cp_state, has_errors=bool(sample.errors))
            is PlugStatus.ERROR
        )


async def test_a_refused_lease_is_retried_and_control_comes_back() -> None:
    script = Script()
    async with (
        central(setup_retry_s=0.3) as site,
        charge_point(site.url(), script=script) as (_cp, _),
    ):
        await wait_for(site.station.ready.is_set)
        await wait_for(lambda: site.station.connectors[1].cp_state is not None)
        script.profile_status = "Rejected"
        with pytest.raises(DeviceResponseError, match="lease profile refused"):
            await site.connectors[0].set_current_limit(10)
        assert (await site.connectors[0].read()).uncontrollable is not None
        script.profile_status = "Accepted"
        with pytest.raises(DeviceResponseError):  # not retried before setup_retry_s
            await site.connectors[0].set_current_limit(10)
        await asyncio.sleep(0.35)
        await site.connectors[0].set_current_limit(10)
        sample = await site.connectors[0].read()
        assert sample.uncontrollable is None
        assert sample.limit_a == 10.0


async def test_charge_point_without_smart_charging_is_reported() -> None:
    script = Script()
    script.config["SupportedFeatureProfiles"] = "Core,RemoteTrigger"
    async with central() as site, charge_point(site.url(), script=script) as (cp, _):
        await wait_for(site.station.ready.is_set)
        await wait_for(lambda: site.station.connectors[1].cp_state is not None)
        sample = await site.connectors[0].read()
        assert any("no SmartCharging" in e for e in sample.errors)
        assert sample.uncontrollable is not None and "no SmartCharging" in sample.uncontrollable
        assert cp.profiles == []  # nothing was even tried


async def test_offered_current_above_the_limit_is_reported() -> None:
    clock = SteppedClock()
    async with (
        central(meter_interval_s=0, clock=clock) as site,
        charge_point(site.url()) as (cp, _),
    ):
        await wait_for(site.station.ready.is_set)
        await site.connectors[0].set_current_limit(8)
        await cp.call(
            call.StatusNotification(connector_id=1, error_code="NoError", status="Charging")
        )
        clock.offset_s += 5.2  # grace: two meter intervals + 5 s since the limit was installed
        sampled = [{"value": "16", "measurand": "Current.Offered", "unit": "A"}]
        for n in range(2):  # IGNORED_SAMPLES in a row
            sample = await site.connectors[0].read()
            assert sample.uncontrollable is None  # not after one sample
            await cp.call(
                call.MeterValues(
                    connector_id=1,
                    meter_value=[{"timestamp": f"2026-01-05T00:00:1{n}Z", "sampledValue": sampled}],
                )
            )
        sample = await site.connectors[0].read()
        assert any("ignores the charging profile" in e for e in sample.errors)
        assert sample.uncontrollable is not None
        assert "ignores the charging profile" in sample.uncontrollable


async def test_reconnect_reinstalls_the_profiles() -> None:
    async with central() as site:
        async with charge_point(site.url()) as (_cp, _):
            await wait_for(site.station.ready.is_set)
            await site.connectors[0].set_current_limit(14)
        await wait_for(lambda: site.station.session is None)
        with pytest.raises(DeviceConnectionError):
            await site.connectors[0].read()
        async with charge_point(site.url()) as (cp2, _):
            await wait_for(site.station.ready.is_set)
            assert len(cp2.safes()) == 1
            assert [
                p["charging_schedule"]["charging_schedule_period"][0]["limit"] for p in cp2.leases()
            ] == [14.0]


async def test_reconnect_without_boot_is_set_up_after_the_boot_wait() -> None:
    async with central(boot_wait_s=0.3) as site, charge_point(site.url(), boot=False) as (cp, _):
        await wait_for(site.station.ready.is_set)
        assert len(cp.safes()) == 1


async def test_a_charge_point_that_does_not_answer_profiles_is_reported_and_retried() -> None:
    script = Script(profile_delay_s=1.0)
    async with (
        central(call_timeout_s=0.3, setup_retry_s=0.2) as site,
        charge_point(site.url(), script=script),
    ):
        await wait_for(lambda: site.station.connectors[1].cp_state is not None)
        await wait_for(lambda: site.station.setup_error is not None)
        sample = await site.connectors[0].read()
        assert any(
            "set-up failed" in e and "no answer to SetChargingProfile" in e for e in sample.errors
        )
        with pytest.raises(DeviceConnectionError, match="profiles not installed"):
            await site.connectors[0].set_current_limit(10)
        script.profile_delay_s = 0.0  # it recovers: the retry configures it
        await wait_for(site.station.ready.is_set, timeout_s=10)
        assert (await site.connectors[0].read()).errors == ()
