"""ModbusMeter against the virtual meter of every built-in model, over loopback Modbus TCP."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import pytest

from fuseguard.control.ports import (
    DeviceConnectionError,
    DeviceResponseError,
    DeviceTimeoutError,
    GridMeter,
    SupportsLifecycle,
)
from fuseguard.devices.meters import ModbusMeter, ModbusTransport
from fuseguard.model.faults import DeviceFault
from fuseguard.model.phases import Phases
from fuseguard.sim.meters import VirtualModbusMeter
from fuseguard.wire.meters import Quantity, builtin_map, encode_entry
from fuseguard.wire.modbus import NumberType, WordOrder, encode_number

from .meter_rig import Rig, meter, modbus_rig

MODELS = ("sdm630", "em24", "em340", "umg604", "abb_b23")
#: resolution of a current / power / voltage / energy register per model
RESOLUTION = {
    "sdm630": (1e-4, 1e-2, 1e-3, 1.0),
    "umg604": (1e-4, 1e-2, 1e-3, 1.0),
    "em24": (1e-3, 0.1, 0.1, 100.0),
    "em340": (1e-3, 0.1, 0.1, 100.0),
    "abb_b23": (1e-2, 1e-2, 0.1, 10.0),
}


@pytest.fixture(params=MODELS)
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    r = await modbus_rig(request.param)
    try:
        yield r
    finally:
        await r.close()


#: models whose maps declare "not available" (float NaN or integer markers); Carlo Gavazzi's
#: protocol has none, so missing points cannot occur there
MARKED_MODELS = ("sdm630", "umg604", "abb_b23")


@pytest.fixture(params=MARKED_MODELS)
async def marked_rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    r = await modbus_rig(request.param)
    try:
        yield r
    finally:
        await r.close()


def _model(rig: Rig) -> str:
    assert isinstance(rig.device, VirtualModbusMeter)
    return rig.device.meter_map.name


async def test_values_and_signs(rig: Rig) -> None:
    model = _model(rig)
    rig.set_load(Phases(12.5, -7.25, 0.5))  # L2 exports (PV on that phase)
    driver = meter(rig, model)
    assert isinstance(driver, GridMeter)
    assert isinstance(driver, SupportsLifecycle)
    sample = await driver.read()
    truth = rig.source.readings
    res_a, res_w, res_v, res_wh = RESOLUTION[model]
    assert sample.current_a is not None and sample.power_per_phase_w is not None
    for got, want in zip(sample.current_a, truth.current_a, strict=True):
        assert got == pytest.approx(want, abs=res_a)
    assert sample.current_a.l2 < 0  # export has a negative sign, magnitudes or not
    for got, want in zip(sample.power_per_phase_w, truth.power_w, strict=True):
        assert got == pytest.approx(want, abs=res_w, rel=1e-6)
    assert sample.power_per_phase_w.l2 < 0
    assert sample.power_w == pytest.approx(truth.total_power_w, abs=res_w, rel=1e-6)
    assert sample.voltage_v is not None
    for got, want in zip(sample.voltage_v, truth.voltage_v, strict=True):
        assert got == pytest.approx(want, abs=res_v, rel=1e-6)
    assert sample.frequency_hz == pytest.approx(truth.frequency_hz, abs=0.1)
    assert sample.energy_import_wh == pytest.approx(truth.energy_import_wh, abs=res_wh, rel=1e-6)
    assert sample.energy_export_wh == pytest.approx(truth.energy_export_wh, abs=res_wh, rel=1e-6)
    assert not sample.stale
    await driver.start()  # start() is one read
    await driver.close()


async def test_all_export_is_negative(rig: Rig) -> None:
    rig.set_load(Phases(-10.0, -10.0, -10.0))
    sample = await meter(rig, _model(rig)).read()
    assert sample.power_w < -6000
    assert sample.current_a is not None and sample.current_a.max < 0


async def test_word_order_on_the_wire(rig: Rig) -> None:
    """The raw registers are in the map's word order (LSW first for Carlo Gavazzi)."""
    model = _model(rig)
    m = builtin_map(model)
    entry = m.entry(Quantity.CURRENT_A, "L1")
    assert entry is not None
    rig.set_load(Phases(21.0, 0.0, 0.0))
    words = await rig.transport().request(m.fc_of(entry), entry.address, entry.count)
    assert words == encode_entry(m, entry, 21.0)
    if model in ("em24", "em340"):
        assert m.order_of(entry) is WordOrder.LITTLE
        assert words == encode_number(21000, NumberType.S32, WordOrder.BIG)[::-1]


async def test_missing_optional_points_are_none_never_numbers(marked_rig: Rig) -> None:
    rig = marked_rig
    model = _model(rig)
    assert isinstance(rig.device, VirtualModbusMeter)
    rig.device.missing = {
        (Quantity.VOLTAGE_V, "L2"),
        (Quantity.FREQUENCY_HZ, None),
        (Quantity.ENERGY_EXPORT_WH, None),
    }
    sample = await meter(rig, model).read()
    assert sample.energy_export_wh is None
    assert sample.energy_import_wh is not None
    assert sample.voltage_v is None
    assert sample.frequency_hz is None
    assert sample.current_a is not None


async def test_missing_phase_current_is_an_error(marked_rig: Rig) -> None:
    rig = marked_rig
    model = _model(rig)
    assert isinstance(rig.device, VirtualModbusMeter)
    rig.device.missing = {(Quantity.CURRENT_A, "L3")}
    with pytest.raises(DeviceResponseError, match="current L3 is not available"):
        await meter(rig, model).read()


async def test_garbage_never_becomes_numbers(rig: Rig) -> None:
    rig.faults.set(DeviceFault.GARBAGE)
    with pytest.raises(DeviceResponseError, match="garbage"):
        await meter(rig, _model(rig)).read()
    rig.faults.clear()
    assert (await meter(rig, _model(rig)).read()).current_a is not None


async def test_offline_times_out_and_recovers(rig: Rig) -> None:
    driver = meter(rig, _model(rig), timeout_s=0.3)
    rig.faults.set(DeviceFault.OFFLINE)
    with pytest.raises(DeviceTimeoutError):
        await driver.read()
    rig.faults.clear()
    assert (await driver.read()).current_a is not None


async def test_slow_answers_beyond_the_timeout_time_out(rig: Rig) -> None:
    driver = meter(rig, _model(rig), timeout_s=0.3)
    rig.faults.set(DeviceFault.SLOW)  # 1.0 s
    with pytest.raises(DeviceTimeoutError, match="no Modbus answer"):
        await driver.read()
    rig.faults.slow_delay_s = 0.05
    assert (await driver.read()).current_a is not None


async def test_frozen_registers_read_stale(rig: Rig) -> None:
    driver = meter(rig, _model(rig), frozen_after_s=0.2)
    rig.set_load(Phases(5.0, 5.0, 5.0))
    assert not (await driver.read()).stale
    rig.faults.set(DeviceFault.FROZEN)
    rig.set_load(Phases(30.0, 30.0, 30.0))  # the meter does not publish it
    first = await driver.read()
    await asyncio.sleep(0.25)
    second = await driver.read()
    assert second.stale
    assert second.current_a == first.current_a
    rig.faults.clear()
    rig.set_load(Phases(31.0, 30.0, 30.0))
    third = await driver.read()
    assert not third.stale
    assert third.current_a is not None and third.current_a.l1 == pytest.approx(31.0, abs=0.01)


async def test_connection_refused() -> None:
    r = await modbus_rig("sdm630")
    port = r.server.port
    await r.close()
    driver = ModbusMeter(
        ModbusTransport("127.0.0.1", port, request_timeout_s=0.5), builtin_map("sdm630")
    )
    with pytest.raises(DeviceConnectionError):
        await driver.read()


async def test_wrong_model_is_refused_by_the_device() -> None:
    r = await modbus_rig("sdm630")  # input registers 0..75 only
    try:
        with pytest.raises(DeviceResponseError, match="refused"):
            await meter(r, "em24").read()  # holding registers
        with pytest.raises(DeviceResponseError, match="refused"):
            await meter(r, "abb_b23").read()
    finally:
        await r.close()


async def test_implausible_value_is_garbage() -> None:
    r = await modbus_rig("umg604")
    try:
        r.set_load(Phases(20_000.0, 0.0, 0.0))  # 20 kA: no meter measures this on a site
        with pytest.raises(DeviceResponseError, match="outside"):
            await meter(r, "umg604").read()
    finally:
        await r.close()


def test_signed_current_rule() -> None:
    from fuseguard.devices.meters.modbus_meter import signed_current

    assert signed_current(5.0, -100.0) == -5.0
    assert signed_current(-5.0, 100.0) == 5.0
    assert signed_current(5.0, 0.0) == 5.0
    assert not math.isnan(signed_current(0.0, -1.0))
