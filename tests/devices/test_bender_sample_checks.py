"""Every sample the Bender driver returns is finite and in range; garbage marks the device failed.

The register decoding refuses values outside their documented range; this is the last line:
whatever path a value took (Modbus, REST, a fallback), :func:`check_sample` sees it before the
controller does.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from fuseguard.control.ports import DeviceConnectionError, DeviceResponseError
from fuseguard.devices.bender import (
    MAX_PLAUSIBLE_CURRENT_A,
    MAX_PLAUSIBLE_POWER_W,
    BenderCharger,
    BenderModbusState,
    BenderParseError,
    BenderRestState,
    check_sample,
)
from fuseguard.model.numbers import NotFiniteError
from fuseguard.model.phases import Phases
from fuseguard.model.samples import ChargerSample
from fuseguard.model.status import CpState, OcppState

GOOD = ChargerSample(
    cp_state=CpState.C,
    ocpp_state=OcppState.CHARGING,
    current_a=Phases(16.0, 15.9, 16.1),
    power_w=11_000.0,
    energy_wh=1_234_567.0,
    session_energy_wh=4_000.0,
    charging_duration_s=3600.0,
    signalled_current_a=16.0,
    limit_a=16.0,
    max_current_a=32.0,
    cable_rating_a=32.0,
)


def test_a_plausible_sample_passes() -> None:
    check_sample(GOOD)
    check_sample(ChargerSample(cp_state=CpState.A))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"current_a": Phases(16.0, math.nan, 16.0)}, "current L2"),
        ({"current_a": Phases(-1.0, 0.0, 0.0)}, "current L1"),
        ({"current_a": Phases(0.0, 0.0, MAX_PLAUSIBLE_CURRENT_A + 1)}, "current L3"),
        ({"power_w": math.inf}, "power"),
        ({"power_w": MAX_PLAUSIBLE_POWER_W * 2}, "power"),
        ({"power_w": -5.0}, "power"),
        ({"energy_wh": math.nan}, "energy"),
        ({"session_energy_wh": -1.0}, "session energy"),
        ({"charging_duration_s": math.inf}, "charging duration"),
        ({"signalled_current_a": 5000.0}, "signalled current"),
        ({"limit_a": math.nan}, "current limit"),
        ({"max_current_a": -6.0}, "maximum current"),
    ],
)
def test_an_implausible_value_is_named(change: dict[str, object], named: str) -> None:
    with pytest.raises(NotFiniteError, match=named):
        check_sample(replace(GOOD, **change))  # type: ignore[arg-type]


def _state(**change: object) -> BenderModbusState:
    base = BenderModbusState(
        ocpp_state=OcppState.CHARGING,
        cp_state=CpState.C,
        errors=(),
        current_a=Phases(16.0, 16.0, 16.0),
        power_w=11_000.0,
        energy_wh=1_000.0,
        signalled_current_a=16,
        max_current_a=32,
        session_energy_wh=10,
        charging_duration_s=60,
        limit_a=16,
    )
    return replace(base, **change)  # type: ignore[arg-type]


async def test_the_driver_refuses_an_implausible_sample_and_says_why() -> None:
    drv = BenderCharger(host="127.0.0.1", use_rest=False)
    states = iter([_state(), _state(power_w=4_294_967_294.0), _state()])

    async def fake_modbus_read() -> BenderModbusState:
        return next(states)

    drv.read_modbus_state = fake_modbus_read  # type: ignore[method-assign]
    assert (await drv.read()).power_w == 11_000.0
    assert drv.last_error is None
    with pytest.raises(DeviceResponseError, match="garbage answer: implausible sample: power") as e:
        await drv.read()
    assert not isinstance(e.value, DeviceConnectionError)
    assert drv.last_error is not None and "power" in drv.last_error
    assert (await drv.read()).power_w == 11_000.0  # recovers: the failure was that sample
    assert drv.last_error is None


REST = {
    "conn_state": "vehicle_charging_type2",
    "auth_state": "authorized_for_charging",
    "ocpp_state": "charging",
    "type2_state": "c",
    "sig_current": "16",
    "current_a": "16.0,16.1,15.9",
    "power_w": "11000",
}


def test_rest_values_pass_the_one_finite_check() -> None:
    state = BenderRestState.from_mapping(REST)
    assert state.current_a == Phases(16.0, 16.1, 15.9)
    assert state.sig_current_a == 16


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("current_a", "16.0,nan,15.9"),
        ("current_a", "16.0,inf,15.9"),
        ("current_a", "16.0,-3,15.9"),
        ("current_a", "16.0,16.0"),
        ("sig_current", "inf"),
        ("sig_current", "5000"),
        ("sig_current", "-6"),
        ("power_w", "1e400"),
        ("power_w", "nan"),
        ("meter_wh", "9" * 400),
        ("voltage_v", "230,nan,230"),
    ],
)
def test_rest_garbage_numbers_are_parse_errors(key: str, value: str) -> None:
    with pytest.raises(BenderParseError):
        BenderRestState.from_mapping({**REST, key: value})
