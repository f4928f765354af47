"""The Modbus TCP twin on a real loopback socket: register map, writes, shared state with REST."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import httpx2
import pytest
from localapi_support import FUSE_A, PASSWORD, USER, StaticLiveData
from pymodbus.client import AsyncModbusTcpClient

from fuseguard.api.local import LiveData, create_local_app
from fuseguard.api.modbus import (
    REG_ACTIVATION,
    REG_CURRENT_LIMIT,
    REG_FALLBACK_LIMIT,
    REG_KEEP_ALIVE,
    ModbusTwinHandle,
    float_to_registers,
    registers_to_float,
    serve_modbus_twin,
)
from fuseguard.control.flex import FlexManagement
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.model.status import PlugStatus


@pytest.fixture
async def twin(flex: FlexManagement, live: StaticLiveData) -> AsyncIterator[ModbusTwinHandle]:
    handle = await serve_modbus_twin(flex, live, "127.0.0.1", 0)
    yield handle
    await handle.close()


@pytest.fixture
async def mb(twin: ModbusTwinHandle) -> AsyncIterator[AsyncModbusTcpClient]:
    async with AsyncModbusTcpClient("127.0.0.1", port=twin.port, timeout=3, retries=0) as c:
        yield c


async def read_floats(c: AsyncModbusTcpClient, address: int, n: int) -> list[float]:
    rr = await c.read_holding_registers(address, count=2 * n, device_id=1)
    assert not rr.isError(), rr
    regs = rr.registers
    return [registers_to_float(regs[i], regs[i + 1]) for i in range(0, 2 * n, 2)]


async def write_floats(c: AsyncModbusTcpClient, address: int, *values: float) -> object:
    regs: list[int] = []
    for v in values:
        regs.extend(float_to_registers(v))
    return await c.write_registers(address, regs, device_id=1)


def test_float_encoding_is_big_endian_high_word_first() -> None:
    assert float_to_registers(230.5) == (0x4366, 0x8000)
    assert registers_to_float(0x4366, 0x8000) == 230.5


async def test_measurement_registers_mirror_live_data(mb: AsyncModbusTcpClient) -> None:
    v = await read_floats(mb, 19000, 22)  # 19000..19043
    assert v[0:3] == [230.0, 231.0, 229.0]  # voltages
    assert v[3:6] == [0.0, 0.0, 0.0]  # 19006-19011 undocumented
    assert v[6:9] == [10.0, 12.5, 17.5]  # currents
    assert v[9] == 40.0  # current sum
    s = [230.0 * 10.0, 231.0 * 12.5, 229.0 * 17.5]
    assert v[14:17] == pytest.approx(s, rel=1e-6)  # apparent power per phase
    assert v[17] == pytest.approx(sum(s), rel=1e-6)
    assert v[13] == 9200.0  # total active power 19026
    assert sum(v[10:13]) == pytest.approx(9200.0, rel=1e-5)  # per-phase split sums up
    assert v[21] == -150.0  # total reactive 19042
    assert sum(v[18:21]) == pytest.approx(-150.0, rel=1e-5)


async def test_live_changes_are_visible(mb: AsyncModbusTcpClient, live: StaticLiveData) -> None:
    live.data = LiveData(
        -2300.0, 0.0, Phases(-3.33, -3.33, -3.34), Phases.uniform(230.0), PlugStatus.IDLE
    )
    (power,) = await read_floats(mb, 19026, 1)
    assert power == -2300.0


async def test_writes_set_shared_state(
    mb: AsyncModbusTcpClient, flex: FlexManagement, live: StaticLiveData
) -> None:
    rr = await write_floats(mb, REG_ACTIVATION, 1.0, 7.0, 24.0)  # 19050..19055 in one FC16
    assert not rr.isError()  # type: ignore[attr-defined]
    assert flex.settings().activation is True
    assert flex.limit_a() == 24.0
    assert flex.settings().fallback_current_limit_a == 7.0
    assert await read_floats(mb, REG_ACTIVATION, 4) == [1.0, 7.0, 24.0, 0.0]
    # the REST side sees the same state, and REST writes show up on Modbus
    app = create_local_app(flex, live, user=USER, password=PASSWORD)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="https://edge", auth=(USER, PASSWORD)
    ) as c:
        assert (await c.get("/v1/flex_management/setting")).json()["CurrentLimit"] == 24.0
        await c.post("/v1/flex_management/setting", json={"CurrentLimit": 13.5})
    assert await read_floats(mb, REG_CURRENT_LIMIT, 1) == [13.5]


async def test_single_value_writes(mb: AsyncModbusTcpClient, flex: FlexManagement) -> None:
    assert not (await write_floats(mb, REG_CURRENT_LIMIT, 19.0)).isError()  # type: ignore[attr-defined]
    assert not (await write_floats(mb, REG_ACTIVATION, 1.0)).isError()  # type: ignore[attr-defined]
    assert flex.limit_a() == 19.0
    assert not (await write_floats(mb, REG_ACTIVATION, 0.0)).isError()  # type: ignore[attr-defined]
    assert flex.limit_a() == FUSE_A


async def test_keep_alive_register_resets_watchdog(
    mb: AsyncModbusTcpClient, flex: FlexManagement, clock: VirtualClock
) -> None:
    await write_floats(mb, REG_ACTIVATION, 1.0, 5.0, 30.0)
    for _ in range(4):
        await clock.advance(100.0)
        rr = await mb.write_register(REG_KEEP_ALIVE, 0x1234, device_id=1)  # FC6, anything
        assert not rr.isError()
    assert flex.limit_a() == 30.0
    await clock.advance(120.5)
    assert flex.in_fallback
    assert await read_floats(mb, REG_CURRENT_LIMIT, 1) == [5.0]  # reads the fallback
    await write_floats(mb, REG_CURRENT_LIMIT, 30.0)  # a write restores normal operation
    assert not flex.in_fallback
    assert flex.limit_a() == 30.0


@pytest.mark.parametrize(
    ("address", "values"),
    [
        (REG_CURRENT_LIMIT, [-1.0]),
        (REG_CURRENT_LIMIT, [math.nan]),
        (REG_CURRENT_LIMIT, [1e9]),
        (REG_FALLBACK_LIMIT, [math.inf]),
        (REG_ACTIVATION, [0.5]),
    ],
)
async def test_invalid_values_are_illegal_value(
    mb: AsyncModbusTcpClient, flex: FlexManagement, address: int, values: list[float]
) -> None:
    before = flex.settings()
    rr = await write_floats(mb, address, *values)
    assert rr.isError()  # type: ignore[attr-defined]
    assert rr.exception_code == 3  # type: ignore[attr-defined]
    assert flex.settings() == before


async def test_writes_outside_the_write_range_or_torn_are_rejected(
    mb: AsyncModbusTcpClient, flex: FlexManagement
) -> None:
    before = flex.settings()
    rr = await write_floats(mb, 19012, 5.0)  # measurements are read-only
    assert rr.isError()  # type: ignore[attr-defined]
    assert rr.exception_code == 2  # type: ignore[attr-defined]
    rr = await mb.write_register(REG_CURRENT_LIMIT + 1, 0, device_id=1)  # half a float
    assert rr.isError()
    rr = await mb.write_registers(REG_FALLBACK_LIMIT + 1, [0, 0], device_id=1)  # straddles two
    assert rr.isError()
    assert flex.settings() == before


async def test_other_unit_ids_get_an_exception(mb: AsyncModbusTcpClient) -> None:
    rr = await mb.read_holding_registers(19000, count=2, device_id=7)
    assert rr.isError()
    rr = await mb.read_holding_registers(18990, count=2, device_id=1)
    assert rr.isError()
