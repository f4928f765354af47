"""The CEMM driver against the virtual device over loopback: every endpoint, every fault."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import aiohttp
import pytest
from cemm_rig import Rig

from fuseguard.control.ports import (
    DeviceConnectionError,
    DeviceResponseError,
    DeviceTimeoutError,
    GridMeter,
)
from fuseguard.devices.cemm import (
    CemmClient,
    CemmGridMeter,
    CemmNotFoundError,
    HistoryPeriod,
    discover,
    parse_connections,
    parse_device_info,
    parse_discovery,
    parse_history,
    parse_realtime,
)
from fuseguard.sim.cemm import CemmServerHandle, Fault, GarbageVariant

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cemm" / "1.24"


def _fixture(name: str) -> object:
    return json.loads((FIXTURES / name).read_text())


# --- fixtures of real response shapes parse ---------------------------------------------------


def test_fixtures_parse():
    info = parse_device_info(_fixture("root.json"))
    assert (info.mac, info.core, info.version) == ("00:1E:C0:85:96:CC", "1.24", "2.18.1.0")
    conns = parse_connections(_fixture("io.json"))
    assert conns[0].alias == "p1"
    assert conns[0].io_id == 1
    p1 = parse_realtime("p1", _fixture("realtime_p1.json"))
    assert p1.power_w == 412
    assert p1.energy_import_kwh == pytest.approx(6120.41 + 6873.02)
    assert p1.data["rate"].value == 2
    doc = parse_realtime("p1", _fixture("realtime_p1_doc.json"))
    assert doc.totals == {}
    assert doc.power_w == -8840
    assert not doc.data["gas"].has_data
    assert doc.data["gas"].timestamp is None
    mb = parse_realtime("mb5", _fixture("realtime_mb.json"))
    assert mb.power_w == -2871.5
    assert mb.channel("t2") is not None  # falls back to totals when data is [0, 0]
    pulse = parse_realtime("pulse-1", _fixture("realtime_pulse.json"))
    assert pulse.power_w is None
    assert pulse.channel("volume") is not None
    disc = parse_discovery((FIXTURES / "discovery.json").read_bytes(), ("192.168.2.115", 9777))
    assert disc.type == "CEMM_basic"


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("day_p1.json", 1441),
        ("day_p1_dst.json", 1381),
        ("day_p1_today.json", 618),
        ("month_p1.json", 30),
        ("year_p1.json", 12),
    ],
)
def test_history_fixtures_follow_the_rules(name: str, count: int):
    hist = parse_history(_fixture(name))
    assert hist.io_id == "88"
    (series,) = hist.channels.values()
    assert len(series) == count
    stamps = [p.timestamp_ms for p in series]
    assert stamps == sorted(stamps, reverse=True)
    if name.startswith("day"):
        assert series[0].value is None
        assert series[0].timestamp.second == 59
        assert all(p.value is not None for p in series[1:])
    else:
        assert all(p.value is not None for p in series)
        assert series[0].value == 0  # future period


# --- every endpoint over loopback -------------------------------------------------------------


async def test_device_info_and_connections(client: CemmClient):
    info = await client.device_info()
    assert info.name == "CEMM Basic"
    conns = await client.connections()
    assert [(c.alias, c.type) for c in conns] == [
        ("p1", "p1"),
        ("mb5", "modbus"),
        ("usage", "usage"),
    ]


@pytest.mark.parametrize("trailing_slash", [True, False])
async def test_realtime_every_alias(
    rig: Rig, server: CemmServerHandle, session: aiohttp.ClientSession, trailing_slash: bool
):
    await rig.advance(60)
    client = CemmClient(
        host="127.0.0.1", port=server.port, session=session, trailing_slash=trailing_slash
    )
    p1 = await client.realtime("p1")
    assert p1.power_w == round(rig.site.power_w())
    assert p1.timestamp == rig.clock.now()
    assert set(p1.totals) >= {"electric_energy", "t1", "t4"}
    mb = await client.realtime("mb5")
    assert mb.power_w == pytest.approx(-rig.pv.power_w, abs=0.1)
    usage = await client.realtime("usage")
    assert usage.power_w == pytest.approx(rig.site.power_w() + rig.pv.power_w, abs=0.1)


async def test_history_day_month_year(rig: Rig, client: CemmClient):
    await rig.advance(300)
    day = await client.history("p1", HistoryPeriod.DAY)
    series = day.channels["electric_power"]
    assert series[0].value is None
    assert day.io_id == "1"
    assert len(day.values("electric_power")) == 10 * 60 + 5
    assert day.values("electric_power")[-1].value == pytest.approx(rig.site.power_w(), abs=20)
    past = await client.history("p1", "day", time_s=1587420000)
    assert past.time_s == 1587420000
    assert len(past.channels["electric_power"]) == 1441
    month = await client.history("p1", HistoryPeriod.MONTH)
    assert len(month.channels["electric_energy"]) == 30  # April
    year = await client.history("p1", HistoryPeriod.YEAR, time_s=int(rig.clock.now().timestamp()))
    assert len(year.channels["electric_energy"]) == 12


async def test_unknown_alias_is_not_found(client: CemmClient):
    with pytest.raises(CemmNotFoundError, match="unknown alias 'mb9'"):
        await client.realtime("mb9")


async def test_bad_time_is_a_response_error(client: CemmClient):
    with pytest.raises(DeviceResponseError, match="HTTP 400"):
        await client.request("p1/data/day", {"time": "yesterday"})


# --- faults ------------------------------------------------------------------------------------


async def test_http_500(rig: Rig, client: CemmClient):
    rig.model.set_fault(Fault.HTTP_500)
    with pytest.raises(DeviceResponseError, match="HTTP 500") as err:
        await client.realtime("p1")
    assert not isinstance(err.value, CemmNotFoundError)


@pytest.mark.parametrize("variant", list(GarbageVariant))
async def test_garbage_never_becomes_numbers(rig: Rig, client: CemmClient, variant: GarbageVariant):
    await rig.advance(5)
    meter = CemmGridMeter(client)
    rig.model.set_fault(Fault.GARBAGE, variant=variant)
    with pytest.raises(DeviceResponseError):
        await meter.read()
    with pytest.raises(DeviceResponseError):
        await client.device_info()
    rig.model.clear_fault()
    assert (await meter.read()).power_w == round(rig.site.power_w())


async def test_slow_answer_times_out_then_recovers(rig: Rig, client: CemmClient):
    await rig.advance(5)
    rig.model.set_fault(Fault.SLOW, delay_s=30)
    client.request_timeout_s = 0.2
    with pytest.raises(DeviceTimeoutError, match="no answer"):
        await client.realtime("p1")
    await rig.advance(30)  # release the handler stuck on the model clock
    # A delay shorter than the timeout is only slow: advance the model clock while waiting.
    rig.model.set_fault(Fault.SLOW, delay_s=2)
    client.request_timeout_s = 2.0
    pending = asyncio.create_task(client.realtime("p1"))
    await asyncio.sleep(0.1)
    await rig.advance(2)
    assert (await pending).power_w is not None


async def test_offline_refuses_connections_and_discovery(
    rig: Rig, server: CemmServerHandle, client: CemmClient
):
    await rig.advance(5)
    assert (await client.device_info()).core == "1.24"  # keeps a pooled connection
    rig.model.set_fault(Fault.OFFLINE)
    await server.wait_settled()
    with pytest.raises(DeviceConnectionError, match="connection failed"):
        await client.realtime("p1")
    assert server.discovery_port is not None
    found = await discover(
        address="127.0.0.1", port=server.discovery_port, duration_s=0.3, bind_host="127.0.0.1"
    )
    assert found == []
    rig.model.clear_fault()
    await server.wait_settled()
    assert (await client.realtime("p1")).power_w is not None


async def test_timed_offline_via_admin_api_ends_by_itself(
    rig: Rig, server: CemmServerHandle, session: aiohttp.ClientSession, client: CemmClient
):
    async with session.put(
        f"{server.base_url}/sim/fault", json={"kind": "offline", "duration_s": 60}
    ) as r:
        assert r.status == 200
    await server.wait_settled()
    with pytest.raises(DeviceConnectionError):
        await client.device_info()
    await rig.advance(60)
    await server.wait_settled()
    assert (await client.device_info()).mac == "00:1E:C0:85:96:CC"


async def test_frozen_telegram_is_stale(rig: Rig, client: CemmClient):
    meter = CemmGridMeter(client)
    assert isinstance(meter, GridMeter)
    await rig.advance(2)
    first = await meter.read()
    assert not first.stale
    assert first.current_a is None  # CEMM has no per-phase currents
    assert first.timestamp == rig.clock.now()
    assert first.energy_import_wh is not None
    assert first.energy_export_wh is not None
    rig.model.set_fault(Fault.FROZEN)
    await rig.advance(10)
    frozen = await meter.read()
    assert frozen.stale
    assert frozen.timestamp == first.timestamp
    rig.model.clear_fault()
    await rig.advance(1)
    fresh = await meter.read()
    assert not fresh.stale
    assert fresh.timestamp > first.timestamp
    assert fresh.energy_import_wh is not None
    assert fresh.energy_import_wh >= first.energy_import_wh


async def test_same_telegram_read_twice_is_stale(rig: Rig, client: CemmClient):
    await rig.advance(1)
    meter = CemmGridMeter(client)
    assert not (await meter.read()).stale
    assert (await meter.read()).stale  # no site tick in between


async def test_meter_without_power_channel_is_an_error(rig: Rig, client: CemmClient):
    await rig.advance(1)
    rig.model.set_fault(Fault.GARBAGE, variant=GarbageVariant.SHAPE)
    with pytest.raises(DeviceResponseError, match="unexpected realtime"):
        await CemmGridMeter(client).read()


async def test_connection_refused_without_server(session: aiohttp.ClientSession):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = CemmClient(host="127.0.0.1", port=port, session=session, request_timeout_s=1)
    with pytest.raises(DeviceConnectionError):
        await client.device_info()


async def test_client_owns_its_session_when_none_given(server: CemmServerHandle):
    async with CemmClient(host="127.0.0.1", port=server.port) as client:
        assert (await client.device_info()).name == "CEMM Basic"
        assert client.session is not None
    assert client.session is None


# --- discovery ----------------------------------------------------------------------------------


async def test_discovery_over_loopback(server: CemmServerHandle):
    assert server.discovery_port is not None
    start = datetime.now(UTC)
    found = await discover(
        address="127.0.0.1",
        port=server.discovery_port,
        duration_s=2.0,
        bind_host="127.0.0.1",
        max_replies=1,
    )
    assert (datetime.now(UTC) - start).total_seconds() < 1.5  # returned early
    assert len(found) == 1
    assert found[0].mac == "00:1E:C0:85:96:CC"
    assert found[0].ip == "127.0.0.1"
    assert found[0].version == "1.24"
    assert found[0].init_state == 1
    assert found[0].source == ("127.0.0.1", server.discovery_port)


async def test_discovery_ignores_garbage_and_echo():
    loop = asyncio.get_running_loop()

    class Noisy(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = cast("asyncio.DatagramTransport", transport)

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.t.sendto(b"cemm_query", addr)
            self.t.sendto(b"{not json", addr)
            self.t.sendto(b'{"ip": "10.0.0.9", "mac": "AA", "version": "1.23", "type": "x"}', addr)

    transport, _ = await loop.create_datagram_endpoint(Noisy, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        found = await discover(
            address="127.0.0.1", port=port, duration_s=0.3, bind_host="127.0.0.1"
        )
    finally:
        transport.close()
    assert [(f.ip, f.mac, f.init_state) for f in found] == [("10.0.0.9", "AA", 0)]
