"""``fuseguard sim meter``: every model serves what its driver reads, on the simulated house."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fuseguard.cli import app
from fuseguard.cli.sim_meter import build_virtual_meter, model_names
from fuseguard.control.ports import GridMeter
from fuseguard.devices.meters import (
    ModbusMeter,
    ModbusTransport,
    SunSpecClient,
    SunSpecInverter,
    SunSpecMeter,
)
from fuseguard.model.clock import RealClock
from fuseguard.sim.meters import MeterModbusServer, VirtualModbusMeter
from fuseguard.wire.meters import builtin_map

runner = CliRunner()


def test_models() -> None:
    assert model_names() == (
        "abb_b23",
        "em24",
        "em340",
        "sdm630",
        "umg604",
        "sunspec-meter",
        "sunspec-inverter",
    )


@pytest.mark.parametrize("model", model_names())
async def test_every_model_serves_its_driver(model: str) -> None:
    site, device = build_virtual_meter(RealClock(), model, pv_peak_w=8000.0)
    server = MeterModbusServer(device, port=0, unit_id=3)
    await server.start()
    transport = ModbusTransport("127.0.0.1", server.port, 3, request_timeout_s=1.0)
    driver: GridMeter
    if model == "sunspec-inverter":
        driver = SunSpecInverter(SunSpecClient(transport))
    elif model == "sunspec-meter":
        driver = SunSpecMeter(SunSpecClient(transport))
    else:
        assert isinstance(device, VirtualModbusMeter)
        driver = ModbusMeter(transport, builtin_map(model))
    try:
        site.tick()
        sample = await driver.read()
        assert sample.current_a is not None
        if model == "sunspec-inverter":
            assert sample.power_w <= 0  # production, or night
        else:
            assert sample.power_w == pytest.approx(site.power_w(), rel=0.01, abs=2.0)
    finally:
        await transport.close()
        await server.close()


async def test_another_unit_id_gets_no_answer_from_the_gateway() -> None:
    from fuseguard.control.ports import DeviceResponseError

    _site, device = build_virtual_meter(RealClock(), "em340")
    server = MeterModbusServer(device, port=0, unit_id=1)
    await server.start()
    transport = ModbusTransport("127.0.0.1", server.port, 2, request_timeout_s=1.0)
    try:
        with pytest.raises(DeviceResponseError, match="exception_code=11"):
            await ModbusMeter(transport, builtin_map("em340")).read()
    finally:
        await transport.close()
        await server.close()


def test_unknown_model_is_refused() -> None:
    result = runner.invoke(app, ["sim", "meter", "--model", "sdm999", "--port", "1502"])
    assert result.exit_code == 2
    assert "unknown model 'sdm999'" in result.output
    with pytest.raises(ValueError, match="unknown model"):
        build_virtual_meter(RealClock(), "sdm999")


def test_help_lists_the_command() -> None:
    result = runner.invoke(app, ["sim", "--help"])
    assert result.exit_code == 0
    assert "meter" in result.output
