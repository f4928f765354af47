"""SunSpec: wire codecs, and the driver against the virtual meter and inverter over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuseguard.control.ports import DeviceResponseError, DeviceTimeoutError, GridMeter
from fuseguard.devices.meters import SunSpecInverter, SunSpecMeter
from fuseguard.model.faults import DeviceFault
from fuseguard.model.phases import Phases
from fuseguard.sim.meters import VirtualSunSpecInverter, VirtualSunSpecMeter
from fuseguard.wire.sunspec import (
    METER,
    UNIMPLEMENTED,
    ModelBlock,
    PointType,
    apply_sf,
    choose_sf,
    decode_point,
    encode_model,
    encode_point,
)

from .meter_rig import Rig, modbus_rig, sunspec_client, sunspec_inverter_rig, sunspec_meter_rig

# --- wire ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        (PointType.INT16, [0x8000]),
        (PointType.UINT16, [0xFFFF]),
        (PointType.SUNSSF, [0x8000]),
        (PointType.ACC32, [0, 0]),
        (PointType.INT32, [0x8000, 0]),
        (PointType.UINT32, [0xFFFF, 0xFFFF]),
        (PointType.UINT64, [0xFFFF] * 4),
        (PointType.FLOAT32, [0x7FC0, 0]),
        (PointType.ENUM16, [0xFFFF]),
    ],
)
def test_unimplemented_markers_are_missing(kind: PointType, words: list[int]) -> None:
    assert decode_point(words, kind) is None
    assert encode_point(None, kind) == words or kind is PointType.FLOAT32


@given(
    kind=st.sampled_from([k for k in UNIMPLEMENTED if k is not PointType.FLOAT32]), data=st.data()
)
def test_point_round_trip(kind: PointType, data: st.DataObject) -> None:
    from fuseguard.wire.sunspec import _NUMBER

    lo, hi = _NUMBER[kind].int_range
    raw = data.draw(st.integers(lo, hi).filter(lambda v: v != UNIMPLEMENTED[kind]))
    assert decode_point(encode_point(raw, kind), kind) == raw


def test_scale_factors() -> None:
    assert apply_sf(2305, -1) == pytest.approx(230.5)
    assert apply_sf(12, 3) == 12000.0
    assert apply_sf(5, None) is None
    assert apply_sf(None, 0) is None
    assert apply_sf(5, 11) is None  # out of the SunSpec range: not a number
    assert choose_sf([12.34, -5.0], PointType.INT16, finest=-2) == -2
    assert choose_sf([400.0], PointType.INT16, finest=-2) == -1
    assert choose_sf([45_000.0], PointType.INT16, finest=0) == 1
    assert choose_sf([65_534.0], PointType.UINT16, finest=0) == 0
    assert choose_sf([65_535.0], PointType.UINT16, finest=0) == 1  # 0xFFFF is the marker


def test_model_block_applies_the_scale_factor() -> None:
    words = encode_model(203, {"AphA": 1234, "A_SF": -2, "WphA": -300, "W_SF": 1})
    block = ModelBlock(203, 40070, tuple(words))
    assert block.value("AphA") == pytest.approx(12.34)
    assert block.value("WphA") == -3000.0
    assert block.value("AphB") is None  # not in values: unimplemented
    assert block.value("PhVphA") is None  # V_SF unimplemented
    assert len(words) == 107 and METER["TotWh_SF"].offset == 54


# --- meter over loopback --------------------------------------------------------------------


@pytest.fixture(params=[40000, 0, 50000], ids=lambda b: f"base{b}")
async def meter_rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    r = await sunspec_meter_rig(base_address=request.param)
    try:
        yield r
    finally:
        await r.close()


async def test_discovery_finds_the_base_and_the_chain(meter_rig: Rig) -> None:
    client = sunspec_client(meter_rig)
    models = await client.discover()
    assert isinstance(meter_rig.device, VirtualSunSpecMeter)
    assert client.base_address == meter_rig.device.base_address
    assert [m.model_id for m in models] == [1, 203]
    assert [m.length for m in models] == [66, 105]
    assert models[1].address == client.base_address + 2 + 68
    common = await client.read_model(models[0])
    assert common.text("Mn") == "fuseguard"
    assert common.text("Md") == "virtual SunSpec meter"
    driver = SunSpecMeter(client)
    await driver.start()  # identity logged, one read
    await driver.close()


async def test_meter_values_signs_and_scale_factors(meter_rig: Rig) -> None:
    meter_rig.set_load(Phases(16.0, -4.5, 0.25))
    driver = SunSpecMeter(sunspec_client(meter_rig))
    assert isinstance(driver, GridMeter)
    sample = await driver.read()
    truth = meter_rig.source.readings
    assert sample.current_a is not None and sample.power_per_phase_w is not None
    for got, want in zip(sample.current_a, truth.current_a, strict=True):
        assert got == pytest.approx(want, abs=0.01)
    for got, want in zip(sample.power_per_phase_w, truth.power_w, strict=True):
        assert got == pytest.approx(want, abs=1.0)
    assert sample.current_a.l2 < 0 and sample.power_per_phase_w.l2 < 0
    assert sample.power_w == pytest.approx(truth.total_power_w, abs=1.0)
    assert sample.voltage_v is not None
    assert sample.voltage_v.l1 == pytest.approx(truth.voltage_v.l1, abs=0.1)
    assert sample.frequency_hz == pytest.approx(truth.frequency_hz, abs=0.01)
    assert sample.energy_import_wh == pytest.approx(truth.energy_import_wh, abs=1.0)
    assert sample.energy_export_wh == pytest.approx(truth.energy_export_wh, abs=1.0)


async def test_large_currents_change_the_scale_factor() -> None:
    r = await sunspec_meter_rig()
    try:
        r.set_load(Phases(400.0, 250.0, -120.0))  # 92 kW: W_SF 1, A_SF -1
        sample = await SunSpecMeter(sunspec_client(r)).read()
        assert sample.current_a is not None
        assert sample.current_a.l1 == pytest.approx(400.0, abs=0.1)
        assert sample.current_a.l3 == pytest.approx(-120.0, abs=0.1)
        assert sample.power_w == pytest.approx(r.source.readings.total_power_w, abs=10.0)
    finally:
        await r.close()


async def test_unimplemented_points_are_missing(meter_rig: Rig) -> None:
    assert isinstance(meter_rig.device, VirtualSunSpecMeter)
    meter_rig.device.missing = {"PhVphB", "Hz_SF", "TotWhExp", "W"}
    meter_rig.set_load(Phases(3.0, 2.0, 1.0))
    sample = await SunSpecMeter(sunspec_client(meter_rig)).read()
    assert sample.voltage_v is None
    assert sample.frequency_hz is None  # its scale factor is unimplemented
    assert sample.energy_export_wh is None
    assert sample.energy_import_wh is not None
    assert sample.power_per_phase_w is not None
    assert sample.power_w == pytest.approx(sample.power_per_phase_w.total)  # W missing: the sum


async def test_unimplemented_phase_current_is_an_error(meter_rig: Rig) -> None:
    assert isinstance(meter_rig.device, VirtualSunSpecMeter)
    meter_rig.device.missing = {"AphB"}
    with pytest.raises(DeviceResponseError, match="AphB is not available"):
        await SunSpecMeter(sunspec_client(meter_rig)).read()


async def test_single_phase_meter_reads_zero_on_absent_phases() -> None:
    r = await sunspec_meter_rig(model_id=201)
    try:
        assert isinstance(r.device, VirtualSunSpecMeter)
        r.device.missing = {"AphB", "AphC", "WphB", "WphC"}
        r.set_load(Phases(7.0, 0.0, 0.0))
        sample = await SunSpecMeter(sunspec_client(r)).read()
        assert sample.current_a == Phases(pytest.approx(7.0, abs=0.01), 0.0, 0.0)  # type: ignore[arg-type]
    finally:
        await r.close()


async def test_meter_faults(meter_rig: Rig) -> None:
    driver = SunSpecMeter(sunspec_client(meter_rig, timeout_s=0.3))
    await driver.read()
    meter_rig.faults.set(DeviceFault.GARBAGE)
    with pytest.raises(DeviceResponseError, match="garbage"):
        await driver.read()  # the model header no longer matches
    meter_rig.faults.clear()
    await driver.read()  # rediscovered
    meter_rig.faults.set(DeviceFault.OFFLINE)
    with pytest.raises(DeviceTimeoutError):
        await driver.read()
    meter_rig.faults.clear()
    assert (await driver.read()).current_a is not None


async def test_no_sunspec_marker_anywhere() -> None:
    r = await modbus_rig("sdm630")  # answers input registers 0..75 only
    try:
        with pytest.raises(
            DeviceResponseError, match="no SunSpec marker 'SunS' at 40000, 0, 50000"
        ):
            await SunSpecMeter(sunspec_client(r)).read()
    finally:
        await r.close()


async def test_meter_driver_refuses_an_inverter() -> None:
    r = await sunspec_inverter_rig()
    try:
        with pytest.raises(
            DeviceResponseError, match=r"no SunSpec meter .* \(found: 1, 103, 701\)"
        ):
            await SunSpecMeter(sunspec_client(r)).read()
    finally:
        await r.close()


# --- inverter over loopback -----------------------------------------------------------------


@pytest.mark.parametrize("with_701", [True, False], ids=["701", "103"])
async def test_inverter_production_is_negative(with_701: bool) -> None:
    r = await sunspec_inverter_rig(with_701=with_701)
    try:
        assert r.pv is not None and isinstance(r.device, VirtualSunSpecInverter)
        r.pv.power_w = 6900.0
        r.site.tick()
        sample = await SunSpecInverter(sunspec_client(r)).read()
        assert sample.power_w == pytest.approx(-6900.0, abs=1.0)
        assert sample.current_a is not None
        assert sample.current_a.l1 == pytest.approx(-10.0, abs=0.05)
        assert sample.current_a.max < 0
        if with_701:
            assert sample.power_per_phase_w is not None
            assert sample.power_per_phase_w.total == pytest.approx(-6900.0, abs=3.0)
            assert sample.energy_import_wh == 12_345.0
        else:
            assert sample.power_per_phase_w is None  # model 103 has no per-phase power
            assert sample.energy_import_wh is None
        produced = r.source.readings.energy_produced_wh  # type: ignore[union-attr]
        assert sample.energy_export_wh == pytest.approx(produced, abs=1.0)
        assert sample.voltage_v is not None
        assert sample.frequency_hz == pytest.approx(50.0, abs=0.05)
    finally:
        await r.close()


async def test_inverter_at_night() -> None:
    r = await sunspec_inverter_rig(with_701=False)
    try:
        sample = await SunSpecInverter(sunspec_client(r)).read()
        assert sample.power_w == 0.0
        assert sample.current_a == Phases(0.0, 0.0, 0.0)
    finally:
        await r.close()


async def test_inverter_unimplemented_power_is_an_error() -> None:
    r = await sunspec_inverter_rig(with_701=False)
    try:
        assert isinstance(r.device, VirtualSunSpecInverter)
        r.device.missing = {"W_SF"}
        with pytest.raises(DeviceResponseError, match="W is not available"):
            await SunSpecInverter(sunspec_client(r)).read()
    finally:
        await r.close()
