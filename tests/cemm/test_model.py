"""The virtual CEMM's physics: site power, tariff registers, PV meter, usage, frozen telegrams."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cemm_rig import Rig

from fuseguard.model.clock import VirtualClock
from fuseguard.sim.cemm import (
    AliasConfig,
    AliasKind,
    CemmModel,
    Fault,
    Period,
    UnknownAliasError,
    alias_kind,
    nl_rate,
)
from fuseguard.wire.cemm import CHANNELS


def test_alias_names_and_kinds():
    assert alias_kind("p1") is AliasKind.SMART_METER
    assert alias_kind("dlms-usb") is AliasKind.SMART_METER
    assert alias_kind("p1-gas") is AliasKind.GAS
    assert alias_kind("mb5") is AliasKind.MODBUS
    assert alias_kind("s02") is AliasKind.S0
    assert alias_kind("pulse-3") is AliasKind.PULSE
    assert alias_kind("usage") is AliasKind.USAGE
    for bad in ("mb0", "mb248", "p2", "pulse-4", ""):
        with pytest.raises(ValueError, match="not a CEMM alias"):
            alias_kind(bad)


def test_nl_rate_schedule():
    tue = datetime(2026, 4, 21, 12, 0)
    assert nl_rate(tue) == 2
    assert nl_rate(tue.replace(hour=6, minute=59)) == 1
    assert nl_rate(tue.replace(hour=7)) == 2
    assert nl_rate(tue.replace(hour=23)) == 1
    assert nl_rate(datetime(2026, 4, 25, 12, 0)) == 1  # Saturday


async def test_p1_reads_the_site_and_integrates_by_tariff(rig: Rig):
    await rig.advance(3600)
    body = rig.model.realtime_body("p1")
    data = body["data"]
    now_ms = int(rig.clock.now().timestamp() * 1000)
    assert data["electric_power"] == [now_ms, round(rig.site.power_w())]
    assert data["rate"] == [now_ms, 2]  # Tuesday 10:00-11:00 CEST
    # Import during an hour of net consumption, all on t2 (normal tariff).
    assert data["t1"][1] == 0.0
    assert data["t3"][1] == 0.0
    assert data["t2"][1] > 0.0
    assert set(data) == set(CHANNELS[AliasKind.SMART_METER][0])
    assert set(body["totals"]) == set(CHANNELS[AliasKind.SMART_METER][1])
    assert body["totals"]["electric_energy"][1] == pytest.approx(data["t1"][1] - data["t3"][1])
    # gas telegram every 5 minutes, integrating 0.1 m3/h
    assert data["gas"][0] % 300_000 == 0
    assert data["gas"][1] == pytest.approx(0.1, abs=0.002)


async def test_energy_registers_match_integrated_power(rig: Rig):
    # PV (4 kW peak at 5 h) beats the house (2.3 kW) from about 2 h on.
    await rig.advance(3 * 3600)
    data = rig.model.realtime_body("p1")["data"]
    assert data["electric_power"][1] < 0
    assert data["t4"][1] > 0.0  # feed-in on the normal tariff
    imported = data["t1"][1] + data["t2"][1]
    exported = data["t3"][1] + data["t4"][1]
    assert rig.model.history_body("p1", Period.DAY, None)["io_id"] == "1"
    # Today's month entry is the net energy: import registers minus feed-in registers.
    month = rig.model.history_body("p1", Period.MONTH, None)["data"]["electric_energy"]
    today = next(v for ts, v in month if v != 0)
    assert today == pytest.approx(imported - exported, abs=0.01)


async def test_pv_meter_and_usage(rig: Rig):
    await rig.advance(3 * 3600)
    pv = rig.model.realtime_body("mb5")
    assert pv["data"]["electric_power"][1] == pytest.approx(-rig.pv.power_w, abs=0.1)
    assert pv["totals"]["t3"][1] + pv["totals"]["t4"][1] > 0
    usage = rig.model.realtime_body("usage")["data"]["electric_power"][1]
    assert usage == pytest.approx(rig.site.power_w() + rig.pv.power_w, abs=0.1)


async def test_day_history_has_minute_averages(rig: Rig):
    await rig.advance(600.5)
    series = rig.model.history_body("p1", Period.DAY, None)["data"]["electric_power"]
    assert series[0][1] is None
    values = [v for _, v in series[1:]]
    # Minutes before the model started read 0; the 10 simulated minutes carry the load.
    # 10 A of house load minus a rising PV morning: 2.1..2.3 kW, decreasing minute by minute.
    assert all(2000 < v <= 2300 for v in values[:10])
    assert values[:10] == sorted(values[:10])  # newest first, so ascending = decreasing in time
    assert set(values[10:]) == {0}
    assert len(series) == 1 + 10 * 60 + 10  # 00:00..10:09 CEST completed, plus sentinel


async def test_frozen_stops_the_telegram_then_resumes(rig: Rig):
    await rig.advance(10)
    before = rig.model.realtime_body("p1")
    rig.model.set_fault(Fault.FROZEN)
    await rig.advance(30)
    assert rig.model.realtime_body("p1") == before
    rig.model.clear_fault()
    await rig.advance(1)
    after = rig.model.realtime_body("p1")
    assert after["data"]["t2"][0] > before["data"]["t2"][0]


async def test_timed_fault_expires_on_the_model_clock():
    clock = VirtualClock(datetime(2026, 1, 5, tzinfo=UTC))
    model = CemmModel(clock, [AliasConfig("p1", io_id=1, port=3, source=lambda: 100.0)])
    model.set_fault("http_500", duration_s=5)
    assert model.fault.kind is Fault.HTTP_500
    await clock.advance(5)
    assert model.fault.kind is None


def test_unknown_alias_and_duplicates():
    clock = VirtualClock()
    model = CemmModel(clock, [AliasConfig("p1", io_id=1, port=3)])
    with pytest.raises(UnknownAliasError):
        model.realtime_body("mb5")
    with pytest.raises(ValueError, match="twice"):
        CemmModel(clock, [AliasConfig("p1", io_id=1, port=3), AliasConfig("p1", io_id=2, port=3)])
    # Before the first telegram every channel is [0, 0].
    assert model.realtime_body("p1")["data"]["electric_power"] == [0, 0]


async def test_every_alias_kind_serves_its_channels():
    clock = VirtualClock(datetime(2026, 1, 5, 12, tzinfo=UTC))
    aliases = [
        AliasConfig("han", io_id=1, port=3, source=lambda: -500.0),
        AliasConfig("p1-gas", io_id=2, port=3, gas_m3_per_h=0.6, initial_gas_m3=100.0),
        AliasConfig("s01", io_id=3, port=2, source=lambda: 900.0),
        AliasConfig("pulse-2", io_id=4, port=1, source=lambda: 6.0, initial_volume_m3=10.0),
        AliasConfig("mb12", io_id=5, port=4, source=lambda: -1500.0),
        AliasConfig("usage", io_id=9, port=0, source=lambda: 400.0),
    ]
    model = CemmModel(clock, aliases)
    model.tick()
    await clock.advance(600)
    model.tick()
    for cfg in aliases:
        body = model.realtime_body(cfg.alias)
        data_keys, total_keys = CHANNELS[cfg.kind]
        assert tuple(body["data"]) == data_keys
        assert tuple(body["totals"]) == total_keys
    assert model.realtime_body("han")["data"]["t4"][1] == pytest.approx(500 * 600 / 3.6e6, abs=1e-3)
    assert model.realtime_body("p1-gas")["data"]["gas"][1] == pytest.approx(100.1)
    assert model.realtime_body("pulse-2")["totals"]["volume"][1] == pytest.approx(10.06)
    assert model.realtime_body("pulse-2")["data"]["flow"][1] == 6.0
    assert model.realtime_body("s01")["totals"]["electric_energy"][1] == pytest.approx(0.15)
    day = model.history_body("pulse-2", Period.DAY, None)
    assert list(day["data"]) == ["flow"]
    assert day["data"]["flow"][1][1] == 6.0
    month = model.history_body("pulse-2", Period.MONTH, None)["data"]["volume"]
    assert sum(v for _, v in month) == pytest.approx(0.06)
    assert [e["type"] for e in model.io_body()["data"]] == [
        "p1",
        "gas",
        "s0",
        "pulse",
        "modbus",
        "usage",
    ]
