"""Issue 16, CEMM: the configurable connection set, every alias family, history ``time``,
the driver on every electricity alias, and discovery answers to the sender's port or to 9777."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import cast
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import typer
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from fuseguard.cli.sim_cemm import build_standalone, register
from fuseguard.config.models import MeterConfig, PvConfig
from fuseguard.devices.cemm import CemmClient, CemmGridMeter, discover
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.sim.cemm import CemmModel, create_cemm_app, serve_cemm
from fuseguard.sim.cemm_connections import DEFAULT_CONNECTIONS, Role, parse_connections
from fuseguard.sim.site import BaseLoad, PiecewiseLinear, PvPlant, SiteModel
from fuseguard.wire.cemm import CHANNELS, HISTORY_CHANNEL, PERIOD_CHANNEL, Period, alias_kind

AMS = ZoneInfo("Europe/Amsterdam")
# Tuesday 2026-04-21 08:00 UTC = 10:00 CEST.
START = datetime(2026, 4, 21, 8, 0, tzinfo=UTC)
EVERY_ALIAS = (
    "p1,p1-usb,emucs,emucs-usb,han,dlms-usb,p1-gas,emucs-gas,s01,s02,s03,"
    "pulse-1,pulse-2=gas,pulse-3,mb1,mb5,mb247,usage"
)
ELECTRIC = ("p1", "p1-usb", "emucs", "emucs-usb", "han", "dlms-usb", "s01", "mb1", "mb247", "usage")


class Site:
    """Base load about 2.3 kW, PV with its peak at 5 h of site time (10:00 + 5 h local).

    One telegram every 10 s (the site's tick; a DSMR 4 meter's rate, DSMR 5 sends every second):
    the tests advance the site by hours, and at 1 s ticks that was 6.6 of this file's 7 s of CPU
    (round 15). The wire bodies and the history's minutes are the same; a meter that ignored the
    tick's length (``dt_s``) would now show (the morning shower's volume)."""

    def __init__(self, connections: str | None = None, start: datetime = START) -> None:
        self.clock = VirtualClock(start)
        self.site = SiteModel(self.clock, period_s=10.0)
        self.site.add(BaseLoad(PiecewiseLinear([(0.0, Phases(4.0, 3.0, 3.0))])))
        self.pv = PvPlant(peak_w=6000.0, sunrise_s=0.0, sunset_s=36000.0)
        self.site.add(self.pv)
        kwargs = {} if connections is None else {"connections": connections}
        self.model = CemmModel.for_site(self.site, pv=self.pv, gas_m3_per_h=0.2, **kwargs)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Site:
        self.task = asyncio.get_running_loop().create_task(self.site.run())
        await self.clock.settle()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


# --- the connection set ------------------------------------------------------------------------


def test_parse_connections_defaults_roles_and_errors():
    assert [(c.alias, c.role) for c in parse_connections(",".join(DEFAULT_CONNECTIONS))] == [
        ("p1", Role.GRID),
        ("pulse-1", Role.WATER),
        ("mb1", Role.PV),
        ("usage", Role.USAGE),
    ]
    conns = parse_connections(" emucs-usb , mb3=grid, s02 ,pulse-3=gas,p1-gas")
    assert [(c.alias, c.role.value, c.port) for c in conns] == [
        ("emucs-usb", "grid", 3),
        ("mb3", "grid", 4),
        ("s02", "pv", 1),
        ("pulse-3", "gas", 1),
        ("p1-gas", "gas", 3),
    ]
    for bad, match in [
        ("p1,foo", "not a CEMM alias"),
        ("mb0", "not a CEMM alias"),
        ("mb248", "not a CEMM alias"),
        ("pulse-1=pv", "cannot meter pv"),
        ("mb1=water", "cannot meter water"),
        ("p1=sun", "unknown role"),
        ("p1,p1", "given twice"),
        ("", "at least one"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_connections(bad)


async def test_default_set_is_p1_water_pv_usage_with_the_seed_channels():
    async with Site() as s:
        await s.clock.advance(5 * 3600)  # 15:00 local, PV near its peak
        with TestClient(create_cemm_app(s.model)) as http:
            io = http.get("/open-api/v1/io").json()["data"]
            assert [(e["alias"], e["type"]) for e in io] == [
                ("p1", "p1"),
                ("pulse-1", "pulse"),
                ("mb1", "modbus"),
                ("usage", "usage"),
            ]
            p1 = http.get("/open-api/v1/p1/realtime/").json()
            assert list(p1["data"]) == ["t1", "t2", "t3", "t4", "electric_power", "rate", "gas"]
            assert p1["data"]["gas"][1] > 0
            water = http.get("/open-api/v1/pulse-1/realtime/").json()
            assert list(water["data"]) == ["flow"] and list(water["totals"]) == ["volume"]
            pv = http.get("/open-api/v1/mb1/realtime/").json()
            assert pv["data"]["electric_power"][1] < -5000  # production measured negative
            usage = http.get("/open-api/v1/usage/realtime/").json()["data"]["electric_power"][1]
            grid = p1["data"]["electric_power"][1]
            assert usage == pytest.approx(grid - pv["data"]["electric_power"][1], abs=2)


async def test_water_meter_counts_volume_from_the_morning_shower():
    # 06:55 local
    async with Site("p1,pulse-1", start=datetime(2026, 4, 21, 4, 55, tzinfo=UTC)) as s:
        await s.clock.advance(20 * 60)  # through the 07:00-07:10 shower at 8 L/min
        body = s.model.realtime_body("pulse-1")
        # 10 min at 8 L/min (the shower covers the 07:00 tap minutes); 07:10-07:15 nothing
        assert body["totals"]["volume"][1] == pytest.approx(0.08, abs=0.001)
        day = s.model.history_body("pulse-1", Period.DAY, None)["data"]["flow"]
        values = dict(day)
        shower_minute = int(datetime(2026, 4, 21, 5, 3, tzinfo=UTC).timestamp()) * 1000
        assert values[shower_minute] == 8.0


async def test_every_alias_family_serves_realtime_and_history():
    async with Site(EVERY_ALIAS) as s:
        await s.clock.advance(3 * 3600)
        aliases = [c.alias for c in parse_connections(EVERY_ALIAS)]
        with TestClient(create_cemm_app(s.model)) as http:
            assert [e["alias"] for e in http.get("/open-api/v1/io/").json()["data"]] == aliases
            for alias in aliases:
                kind = alias_kind(alias)
                rt = http.get(f"/open-api/v1/{alias}/realtime/")
                assert rt.status_code == 200, alias
                data_keys, total_keys = CHANNELS[kind]
                assert list(rt.json()["data"]) == list(data_keys), alias
                assert list(rt.json()["totals"]) == list(total_keys), alias
                for period, channel in [
                    ("day", HISTORY_CHANNEL[kind]),
                    ("month", PERIOD_CHANNEL[kind]),
                    ("year", PERIOD_CHANNEL[kind]),
                ]:
                    r = http.get(f"/open-api/v1/{alias}/data/{period}/")
                    assert r.status_code == 200, (alias, period)
                    assert list(r.json()["data"]) == [channel], (alias, period)
            s0 = http.get("/open-api/v1/s01/realtime/").json()["data"]
            assert s0["electric_power"][1] > 0  # a pulse counter has no direction
            gas_pulse = http.get("/open-api/v1/pulse-2/realtime/").json()
            assert gas_pulse["data"]["flow"][1] == pytest.approx(0.2 * 1000 / 60, abs=0.01)
            assert http.get("/open-api/v1/mb6/realtime/").status_code == 404


# --- history `time` -----------------------------------------------------------------------------


async def test_history_time_is_normalised_to_the_local_period_start():
    async with Site() as s:
        await s.clock.advance(3 * 3600)  # 13:00 local on 2026-04-21
        with TestClient(create_cemm_app(s.model)) as http:
            mid_day = int(datetime(2026, 4, 21, 9, 17, 33, tzinfo=UTC).timestamp())
            midnight = int(datetime(2026, 4, 21, tzinfo=AMS).timestamp())
            day = http.get(f"/open-api/v1/p1/data/day/?time={mid_day}").json()
            assert day["time"] == midnight
            assert day["data"]["electric_power"][-1][0] == midnight * 1000
            month = http.get(f"/open-api/v1/p1/data/month/?time={mid_day}").json()
            assert month["time"] == int(datetime(2026, 4, 1, tzinfo=AMS).timestamp())
            year = http.get(f"/open-api/v1/p1/data/year/?time={mid_day}").json()
            assert year["time"] == int(datetime(2026, 1, 1, tzinfo=AMS).timestamp())
            same = http.get(f"/open-api/v1/p1/data/day/?time={midnight}").json()
            assert same == day


async def test_past_minutes_without_data_are_zero_not_omitted():
    async with Site() as s:
        await s.clock.advance(30 * 60)  # the CEMM started at 10:00 local, now 10:30
        body = s.model.history_body("p1", Period.DAY, None)
        series = body["data"]["electric_power"]
        assert series[0][1] is None  # 23:59 sentinel first
        assert len(series) == 1 + 10 * 60 + 30  # every completed minute since midnight
        before_start = [v for ts, v in series[1:] if ts < START.timestamp() * 1000]
        assert len(before_start) == 600 and set(before_start) == {0}
        assert all(v > 0 for ts, v in series[1:] if ts >= START.timestamp() * 1000)


# --- the driver on every electricity alias -----------------------------------------------------


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_driver_reads_every_electricity_alias_family(session: aiohttp.ClientSession):
    async with Site(EVERY_ALIAS) as s:
        handle = await serve_cemm(s.model, "127.0.0.1", 0, discovery_port=None)
        try:
            await s.clock.advance(3 * 3600)
            client = CemmClient(host="127.0.0.1", port=handle.port, session=session)
            for alias in ELECTRIC:
                sample = await CemmGridMeter(client, alias=alias).read()
                assert sample.power_w == pytest.approx(
                    s.model.realtime_body(alias)["data"]["electric_power"][1]
                )
        finally:
            await handle.close()
    for bad in ("pulse-1", "p1-gas", "emucs-gas", "gas", "mb0"):
        with pytest.raises(ValueError, match="alias"):
            CemmGridMeter(client, alias=bad)


def test_config_accepts_every_electricity_alias_for_grid_and_pv():
    for alias in ELECTRIC:
        assert MeterConfig(driver="cemm", alias=alias).alias == alias
        assert PvConfig(driver="cemm", alias=alias).alias == alias
    for bad in ("pulse-2", "p1-gas", "mb300"):
        with pytest.raises(ValidationError, match="alias"):
            MeterConfig(driver="cemm", alias=bad)
        with pytest.raises(ValidationError, match="alias"):
            PvConfig(driver="cemm", alias=bad)


# --- discovery: where the answer goes -----------------------------------------------------------


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_discovery_hears_a_device_that_answers_the_senders_port():
    async with Site() as s:
        handle = await serve_cemm(s.model, "127.0.0.1", 0, discovery_port=0)
        try:
            assert handle.discovery_port is not None
            found = await discover(
                address="127.0.0.1",
                port=handle.discovery_port,
                duration_s=2.0,
                bind_host="127.0.0.1",
                bind_port=None,  # ephemeral: only sender-port answers can arrive
                max_replies=1,
            )
        finally:
            await handle.close()
    assert [f.mac for f in found] == ["00:1E:C0:85:96:CC"]


async def test_discovery_hears_a_device_that_answers_a_fixed_port():
    listen_port = _free_udp_port()  # stands in for 9777 (a test must not need a fixed port)
    async with Site() as s:
        handle = await serve_cemm(
            s.model, "127.0.0.1", 0, discovery_port=0, discovery_reply_port=listen_port
        )
        try:
            assert handle.discovery_port is not None
            ephemeral = await discover(
                address="127.0.0.1",
                port=handle.discovery_port,
                duration_s=0.4,
                bind_host="127.0.0.1",
                bind_port=None,
            )
            found = await discover(
                address="127.0.0.1",
                port=handle.discovery_port,
                duration_s=2.0,
                bind_host="127.0.0.1",
                bind_port=listen_port,
                max_replies=1,
            )
        finally:
            await handle.close()
    assert ephemeral == []  # the answer went to the fixed port, not to the sender's
    assert [f.mac for f in found] == ["00:1E:C0:85:96:CC"]
    assert found[0].source[0] == "127.0.0.1"


async def test_discovery_falls_back_to_an_ephemeral_port_when_the_port_is_taken():
    loop = asyncio.get_running_loop()

    class Answer(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = cast("asyncio.DatagramTransport", transport)

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            reply = b'{"ip": "10.0.0.7", "mac": "BB", "version": "1.24", "type": "CEMM_basic"}'
            self.t.sendto(reply, addr)

    busy, _ = await loop.create_datagram_endpoint(Answer, local_addr=("127.0.0.1", 0))
    try:
        port = busy.get_extra_info("sockname")[1]
        # bind_port is the answering socket's own port: taken, so the query uses an ephemeral one
        found = await discover(
            address="127.0.0.1", port=port, duration_s=1.0, bind_host="127.0.0.1", bind_port=port
        )
    finally:
        busy.close()
    assert [f.mac for f in found] == ["BB"]


# --- fuseguard sim cemm --connections --------------------------------------------------------


def test_sim_cemm_command_takes_a_connection_set():
    app = typer.Typer()
    register(app)

    @app.command("other")
    def other() -> None:
        """Keep Typer in multi-command mode."""

    result = CliRunner().invoke(app, ["cemm", "--help"])
    assert result.exit_code == 0 and "--connections" in result.output
    bad = CliRunner().invoke(app, ["cemm", "--port", "1", "--connections", "p1,pulse-1=pv"])
    assert bad.exit_code != 0
    assert "cannot meter pv" in bad.output
    _, model = build_standalone(VirtualClock(START), connections="han,s01,pulse-2,usage")
    assert model.aliases == ["han", "s01", "pulse-2", "usage"]
    _, default = build_standalone(VirtualClock(START))
    assert default.aliases == list(DEFAULT_CONNECTIONS)
