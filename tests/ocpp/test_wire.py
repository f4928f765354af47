"""OCPP values -> domain values: closed tables, bounded finite numbers, profile shapes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ocpp.messages import Call, validate_payload
from websockets.datastructures import Headers

from fuseguard.devices.ocpp.server import basic_credentials, identity_from_path
from fuseguard.devices.ocpp.wire import (
    OcppValueError,
    ProfileUnit,
    connector_id_of,
    parse_configuration,
    parse_meter_values,
    status_of,
    tx_default_profile,
)
from fuseguard.model.phases import Phases
from fuseguard.model.status import CpState, OcppState, PlugStatus, plug_status


def _mv(*sampled: dict[str, str]) -> list[dict[str, object]]:
    return [{"timestamp": "2026-01-05T00:00:00Z", "sampled_value": list(sampled)}]


# OCPP 1.6 status -> the seed's plug status (the table in docs/devices/ocpp.md)
STATUS_TABLE = {
    "Available": PlugStatus.IDLE,
    "Preparing": PlugStatus.STARTING,
    "Charging": PlugStatus.CHARGING,
    "SuspendedEVSE": PlugStatus.CONNECTED,
    "SuspendedEV": PlugStatus.CONNECTED,
    "Finishing": PlugStatus.STOPPED,
    "Reserved": PlugStatus.IDLE,
    "Unavailable": PlugStatus.STOPPED,
    "Faulted": PlugStatus.ERROR,
}


@pytest.mark.parametrize(("status", "expected"), STATUS_TABLE.items())
def test_status_table(status: str, expected: PlugStatus) -> None:
    ocpp, cp = status_of(status)
    assert isinstance(ocpp, OcppState)
    assert isinstance(cp, CpState)
    got = plug_status(online=True, cp=cp, ocpp=ocpp, offered_current_a=16.0, charging_for_s=600)
    assert got is expected


def test_unknown_status_is_refused() -> None:
    with pytest.raises(OcppValueError):
        status_of("Occupied")  # OCPP 1.5, not 1.6


def test_meter_values_units_and_phases() -> None:
    r = parse_meter_values(
        _mv(
            {"value": "10", "measurand": "Current.Import", "phase": "L1-N"},
            {"value": "11", "measurand": "Current.Import", "phase": "L2"},
            {"value": "7.4", "measurand": "Power.Active.Import", "unit": "kW"},
            {"value": "12345"},  # default measurand: energy register in Wh
            {"value": "230", "measurand": "Voltage", "phase": "L1"},  # ignored
            {"value": "99", "measurand": "Current.Import", "location": "Inlet"},  # not the outlet
        )
    )
    assert r.current_a == Phases(10, 11, 0)
    assert r.power_w == pytest.approx(7400)
    assert r.energy_wh == 12345
    assert r.refused == ()


def test_phaseless_current_is_l1() -> None:
    r = parse_meter_values(_mv({"value": "6.5", "measurand": "Current.Import", "unit": "A"}))
    assert r.current_a == Phases(6.5, 0, 0)


@pytest.mark.parametrize(
    "sv",
    [
        {"value": "nan", "measurand": "Current.Import", "phase": "L1"},
        {"value": "inf", "measurand": "Power.Active.Import"},
        {"value": "1e400", "measurand": "Energy.Active.Import.Register"},
        {"value": "-5", "measurand": "Energy.Active.Import.Register"},
        {"value": "5000", "measurand": "Current.Offered"},
        {"value": "1" * 40, "measurand": "Current.Offered"},
        {"value": "ten", "measurand": "Current.Offered"},
        {"value": "16", "measurand": "Current.Offered", "unit": "W"},
        {"value": "AAEC", "measurand": "Current.Offered", "format": "SignedData"},
    ],
)
def test_implausible_values_are_refused(sv: dict[str, str]) -> None:
    r = parse_meter_values(_mv(sv))
    assert r.current_a is None and r.offered_a is None and r.power_w is None and r.energy_wh is None
    assert len(r.refused) == 1


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=8),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    )
)
def test_meter_value_parser_never_raises(data: object) -> None:
    r = parse_meter_values(data)
    for v in (r.offered_a, r.power_w, r.energy_wh):
        assert v is None or v == v  # finite floats only (NaN != NaN)


def test_connector_id_bounds() -> None:
    assert connector_id_of(2) == 2
    for bad in (-1, 65, 1.5, True, "1", float("nan")):
        with pytest.raises(OcppValueError):
            connector_id_of(bad)


def test_configuration_parse() -> None:
    cfg = parse_configuration(
        [
            {"key": "SupportedFeatureProfiles", "readonly": True, "value": "Core, SmartCharging"},
            {"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "99999999999"},
            {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Power"},
            {"key": "MeterValueSampleInterval", "readonly": False, "value": "-3"},
        ]
    )
    assert cfg.smart_charging
    assert cfg.max_stack_level is None  # out of range -> unknown
    assert not cfg.amps
    assert cfg.sample_interval_s is None
    assert parse_configuration("garbage") == parse_configuration([])


async def test_profiles_pass_the_ocpp_schema() -> None:
    start = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    for unit in (ProfileUnit(phases=3), ProfileUnit(amps=False, phases=1, voltage_v=230)):
        profile = tx_default_profile(
            profile_id=7,
            stack_level=1,
            current_a=16,
            unit=unit,
            start=start,
            valid_to=datetime(2026, 1, 5, 12, 1, tzinfo=UTC),
        )
        await validate_payload(
            Call("1", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": profile}),
            "1.6",
        )
    assert ProfileUnit(amps=False, phases=1).limit(16) == 3680.0
    assert profile["validTo"] == "2026-01-05T12:01:00Z"


def test_identity_from_path() -> None:
    assert identity_from_path("/ocpp/CP004") == "CP004"
    assert identity_from_path("/CP004") == "CP004"
    assert identity_from_path("/ocpp/CP%20004?x=1") == "CP 004"
    assert identity_from_path("/") is None
    assert identity_from_path("/a/b/c") is None
    assert identity_from_path("/ocpp/" + "x" * 49) is None
    assert identity_from_path("/ocpp/%0a") is None


def test_basic_credentials() -> None:
    assert basic_credentials(Headers({"Authorization": "Basic Q1AxOnB3OmQ="})) == ("CP1", "pw:d")
    assert basic_credentials(Headers({"Authorization": "Bearer x"})) is None
    assert basic_credentials(Headers({"Authorization": "Basic " + "A" * 600})) is None
    assert basic_credentials(Headers({})) is None
