"""The virtual Bender's state machine in-process (no sockets), on virtual time."""

from __future__ import annotations

import pytest

from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases, Rotation
from fuseguard.model.status import AuthState, CpState, OcppState
from fuseguard.sim.bender import (
    KEYS_5_22,
    KEYS_5_33,
    BenderController,
    BenderDeviceConfig,
    BenderRegister,
    Firmware,
    RegisterWriteError,
)
from fuseguard.sim.site import SiteModel
from fuseguard.sim.vehicle import SimVehicle


def make(
    *, firmware: Firmware = Firmware.V5_33, fixed_cable: bool = True, **cfg: object
) -> tuple[VirtualClock, SiteModel, BenderController]:
    clock = VirtualClock()
    controller = BenderController(
        clock,
        BenderDeviceConfig(firmware=firmware, **cfg),  # type: ignore[arg-type]
        fixed_cable=fixed_cable,
    )
    site = SiteModel(clock)
    site.add(controller.connector(1))
    return clock, site, controller


async def run(clock: VirtualClock, site: SiteModel, seconds: int) -> None:
    for _ in range(seconds):
        await clock.advance(1)
        site.tick()


async def test_sig_current_is_min_of_all_limits() -> None:
    _, _, ctl = make(fixed_cable=False, max_current_a=32)
    c = ctl.connector(1)
    c.plug_in(SimVehicle(cable_rating_a=20, max_current_a=32))
    assert c.sig_current_a == 0  # not authorised
    c.authorize()
    assert c.sig_current_a == 20  # cable rating
    assert c.full_state()["type2_proximity"] == "20"
    c.set_hems_limit(16)
    assert c.sig_current_a == 16
    c.energy_man_current_a = 10
    assert c.sig_current_a == 10
    for low in (1, 5):
        c.set_hems_limit(low)
        assert c.sig_current_a == 0  # 1..5 act as 0
    c.set_hems_limit(100)
    c.energy_man_current_a = None
    assert c.sig_current_a == 20
    c.unplug()
    assert c.full_state()["type2_proximity"] == "no_cable"


async def test_watchdog_uses_safe_current_until_next_write() -> None:
    clock, site, ctl = make()
    c = ctl.connector(1)
    c.plug_in(SimVehicle())
    c.authorize()
    c.write_registers(BenderRegister.SAFE_CURRENT, [6, 10])
    c.write_registers(BenderRegister.HEMS_CURRENT_LIMIT, [16])
    await run(clock, site, 9)
    assert not c.watchdog_expired
    assert c.sig_current_a == 16
    await run(clock, site, 2)
    assert c.watchdog_expired
    assert c.sig_current_a == 6
    assert c.modbus_registers()[BenderRegister.HEMS_CURRENT_LIMIT] == 16
    c.write_registers(BenderRegister.HEMS_CURRENT_LIMIT, [16])
    assert c.sig_current_a == 16
    c.write_registers(BenderRegister.COMM_TIMEOUT, [0])  # 0 disables the watchdog
    await run(clock, site, 30)
    assert c.sig_current_a == 16


async def test_register_writes_are_validated() -> None:
    _, _, ctl = make(max_current_a=16)
    c = ctl.connector(1)
    with pytest.raises(RegisterWriteError) as info:
        c.write_registers(BenderRegister.OCPP_STATE, [1])
    assert info.value.illegal_address
    with pytest.raises(RegisterWriteError) as info:
        c.write_registers(BenderRegister.SAFE_CURRENT, [3])
    assert not info.value.illegal_address
    with pytest.raises(RegisterWriteError):
        c.write_registers(BenderRegister.SAFE_CURRENT, [20])  # above max_current
    c.write_registers(BenderRegister.HEMS_CURRENT_LIMIT_DECI, [105])
    assert c.hems_limit_a == pytest.approx(10.5)
    regs = c.modbus_registers()
    assert regs[BenderRegister.HEMS_CURRENT_LIMIT] == 10
    assert regs[BenderRegister.HEMS_CURRENT_LIMIT_DECI] == 105


async def test_auth_wait_timeout_and_free_charging() -> None:
    clock, site, ctl = make()
    c = ctl.connector(1)
    c.auth_timeout_s = 30
    c.authorize("abc")  # card before the car
    assert c.auth_state is AuthState.AUTHORIZED_FOR_CHARGING
    await run(clock, site, 31)
    assert c.auth_state is AuthState.AUTH_TIMEOUT
    c.plug_in(SimVehicle())
    assert c.auth_state is AuthState.WAIT_FOR_AUTH
    assert c.ocpp_state is OcppState.PREPARING
    c.unplug()
    c.authorize("abc")
    c.plug_in(SimVehicle())  # within the window: starts at once
    assert c.ocpp_state is OcppState.PREPARING
    assert c.sig_current_a == 32

    _, _, free = make(free_charging=True, rest_with_uid=True)
    f = free.connector(1)
    f.plug_in(SimVehicle())
    assert f.auth_state is AuthState.AUTHORIZED_FOR_CHARGING
    assert f.full_state()["free_charging"] == "on"


async def test_uid_only_in_with_uid_mode() -> None:
    _, _, ctl = make(rest_with_uid=True)
    c = ctl.connector(1)
    c.plug_in(SimVehicle())
    c.authorize("046e453af012ca3")
    assert c.full_state()["auth_uid"] == "046e453af012ca3"
    _, _, plain = make()
    p = plain.connector(1)
    p.plug_in(SimVehicle())
    p.authorize("046e453af012ca3")
    assert p.full_state()["auth_uid"] == ""


async def test_stop_transaction_and_unavailable() -> None:
    clock, site, ctl = make()
    c = ctl.connector(1)
    c.plug_in(SimVehicle())
    c.authorize()
    await run(clock, site, 3)
    assert c.ocpp_state is OcppState.CHARGING
    c.stop_transaction()
    assert c.ocpp_state is OcppState.FINISHING
    assert c.sig_current_a == 0
    await run(clock, site, 3)
    assert c.cp_state is CpState.B
    c.unplug()
    c.write_registers(BenderRegister.AVAILABILITY, [0])
    assert c.ocpp_state is OcppState.UNAVAILABLE
    assert c.modbus_registers()[BenderRegister.OCPP_STATE] == OcppState.UNAVAILABLE.ordinal


async def test_energy_counters_are_consistent() -> None:
    clock, site, ctl = make()
    c = ctl.connector(1)
    start_meter = c.meter_wh
    v = SimVehicle(phases=3, max_current_a=16, battery_wh=50_000, soc=0.2, response_delay_s=0)
    c.plug_in(v)
    c.authorize()
    await run(clock, site, 3601)
    # one hour at 3 x 16 A x 230 V = 11.04 kWh
    assert c.transaction_wh == pytest.approx(11_040, rel=0.01)
    assert c.meter_wh - start_meter == pytest.approx(c.transaction_wh)
    assert v.soc == pytest.approx(0.2 + 11_040 * 0.92 / 50_000, rel=0.01)
    assert int(c.full_state()["time_since_charging_start"]) == 3601
    regs = c.modbus_registers()
    assert (regs[716] << 16 | regs[717]) == int(c.transaction_wh)


async def test_rotation_maps_terminals_to_grid() -> None:
    clock = VirtualClock()
    ctl = BenderController(clock, rotations=(Rotation.L3L1L2,))
    site = SiteModel(clock)
    site.add(ctl.connector(1))
    c = ctl.connector(1)
    c.plug_in(SimVehicle(phases=1, max_current_a=10, response_delay_s=0))
    c.authorize()
    await run(clock, site, 1)
    assert c.current_a == Phases(10.0, 0.0, 0.0)
    assert site.current_a() == Phases(0.0, 0.0, 10.0)


@pytest.mark.parametrize(
    ("firmware", "keys"), [(Firmware.V5_33, KEYS_5_33), (Firmware.V5_22, KEYS_5_22)]
)
def test_full_state_key_sets(firmware: Firmware, keys: tuple[str, ...]) -> None:
    _, _, ctl = make(firmware=firmware)
    state = ctl.full_state()
    assert tuple(state) == keys
    if firmware is Firmware.V5_22:
        for missing in ("manuf_serial_n", "voltage_v", "wlan_state", "rcmb_max", "rcmb_values"):
            assert missing not in state
        assert state["rcmb_max_values"] == " 0.0, 0.0"
    else:
        for both in ("rcmb_max", "rcmb_values", "rcmb_max_values", "rcmb_current_values"):
            assert both in state


def test_two_connectors_and_unknown_connector() -> None:
    ctl = BenderController(VirtualClock(), connector_count=2)
    assert ctl.full_state()["slave_state"] == "available"
    with pytest.raises(KeyError):
        ctl.connector(3)
    with pytest.raises(ValueError, match="1 or 2"):
        BenderController(VirtualClock(), connector_count=3)


async def test_session_start_and_end_time_bcd() -> None:
    clock, _, ctl = make()
    c = ctl.connector(1)
    await clock.advance(12 * 3600 + 34 * 60 + 56)
    c.plug_in(SimVehicle())
    c.authorize()
    regs = c.modbus_registers()
    assert (regs[BenderRegister.SESSION_START_BCD], regs[708]) == (0x0012, 0x3456)
    assert (regs[BenderRegister.SESSION_END_BCD], regs[711]) == (0, 0)
    await clock.advance(3600)
    c.stop_transaction()
    regs = c.modbus_registers()
    assert (regs[BenderRegister.SESSION_END_BCD], regs[711]) == (0x0013, 0x3456)
