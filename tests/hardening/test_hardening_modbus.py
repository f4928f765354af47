"""Issue 17 item 3: the Modbus twin has access control (Modbus itself has no authentication)."""

from __future__ import annotations

import asyncio

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from structlog.testing import capture_logs

from fuseguard.api.access import HostAllowList
from fuseguard.api.modbus import REG_ACTIVATION, REG_FALLBACK_LIMIT, float_to_registers
from fuseguard.api.modbus import serve_modbus_twin as serve
from fuseguard.config.models import ModbusApiConfig
from tests.hardening.hardening_support import StaticLiveData, make_flex


def _regs(*values: float) -> list[int]:
    out: list[int] = []
    for v in values:
        out.extend(float_to_registers(v))
    return out


def test_default_binds_loopback_and_allows_only_loopback() -> None:
    cfg = ModbusApiConfig()
    assert cfg.host == "127.0.0.1"
    allowed = HostAllowList.of(cfg.allowed_hosts)
    assert allowed.allows("127.0.0.1")
    assert allowed.allows("::1")
    assert allowed.allows("::ffff:127.0.0.1")
    assert not allowed.allows("192.168.1.20")
    assert not allowed.allows("")
    assert cfg.read_only is False


def test_allowed_hosts_are_validated() -> None:
    with pytest.raises(ValueError, match="not an IP address or CIDR"):
        ModbusApiConfig(allowed_hosts=["ems.local"])
    assert HostAllowList.of(["192.168.1.0/24"]).allows("192.168.1.77")
    assert not HostAllowList.of(["192.168.1.0/24"]).allows("192.168.2.77")


async def test_peer_outside_allowed_hosts_is_disconnected_and_changes_nothing() -> None:
    flex = make_flex()
    twin = await serve(flex, StaticLiveData(), "127.0.0.1", 0, allowed_hosts=["10.99.0.0/16"])
    try:
        with capture_logs() as logs:
            client = AsyncModbusTcpClient("127.0.0.1", port=twin.port, timeout=1, retries=0)
            await client.connect()
            with pytest.raises(ModbusException):
                await client.write_registers(REG_ACTIVATION, _regs(0.0, 10000.0), device_id=1)
            client.close()
        assert flex.settings().fallback_current_limit_a == 10.0
        refused = [e for e in logs if e["event"] == "modbus_peer_refused"]
        assert refused
        assert refused[0]["peer"].startswith("127.0.0.1:")
    finally:
        await twin.close()


async def test_read_only_refuses_every_write_but_reads() -> None:
    flex = make_flex()
    flex.update(activation=True, current_limit_a=20.0, source="test")
    twin = await serve(flex, StaticLiveData(), "127.0.0.1", 0, read_only=True)
    try:
        async with AsyncModbusTcpClient("127.0.0.1", port=twin.port, timeout=2, retries=0) as c:
            rr = await c.write_registers(REG_ACTIVATION, _regs(0.0), device_id=1)
            assert rr.isError()
            assert rr.exception_code == 1  # illegal function
            rr = await c.write_registers(REG_FALLBACK_LIMIT, _regs(10000.0), device_id=1)
            assert rr.isError()
            ok = await c.read_holding_registers(REG_ACTIVATION, count=2, device_id=1)
            assert not ok.isError()
        s = flex.settings()
        assert s.activation is True
        assert s.fallback_current_limit_a == 10.0
    finally:
        await twin.close()


async def test_every_write_log_line_names_the_peer() -> None:
    flex = make_flex()
    twin = await serve(flex, StaticLiveData(), "127.0.0.1", 0)
    try:
        with capture_logs() as logs:
            async with AsyncModbusTcpClient("127.0.0.1", port=twin.port, timeout=2, retries=0) as c:
                assert not (
                    await c.write_registers(REG_FALLBACK_LIMIT, _regs(8.0), device_id=1)
                ).isError()
                assert (
                    await c.write_registers(REG_FALLBACK_LIMIT, _regs(-1.0), device_id=1)
                ).isError()
        writes = [e for e in logs if e["event"] in ("modbus_write", "modbus_write_rejected")]
        assert len(writes) == 2
        assert all(e["peer"].startswith("127.0.0.1:") for e in writes)
        updated = [e for e in logs if e["event"] == "flex_updated"]
        assert updated and "modbus 127.0.0.1:" in updated[0]["reason"]
    finally:
        await twin.close()


async def _connection_closed(reader: asyncio.StreamReader, within_s: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), within_s) == b""
    except TimeoutError:
        return False


async def test_idle_connections_are_closed_and_connections_capped() -> None:
    flex = make_flex()
    twin = await serve(
        flex, StaticLiveData(), "127.0.0.1", 0, max_connections=2, idle_timeout_s=0.3
    )
    try:
        first = [await asyncio.open_connection("127.0.0.1", twin.port) for _ in range(2)]
        extra_r, extra_w = await asyncio.open_connection("127.0.0.1", twin.port)
        assert await _connection_closed(extra_r, 2.0)  # third one: over the cap
        for reader, _ in first:
            assert await _connection_closed(reader, 3.0)  # idle ones: closed by the timer
        for _, writer in [*first, (extra_r, extra_w)]:
            writer.close()
    finally:
        await twin.close()
