"""The MQTT interface against a real broker: retained state, commands, HA discovery, removal."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from fuseguard.api.mqtt.service import MqttInterface
from fuseguard.config import FuseguardConfig
from fuseguard.config.controller import charger_specs
from fuseguard.control.flex import FlexManagement
from fuseguard.control.plug_settings import PlugSettings
from fuseguard.control.types import ControllerStatus
from fuseguard.model.clock import RealClock
from fuseguard.model.phases import Phases

from .conftest import Probe, retained
from .statuskit import EVSE_A, EVSE_B, PLUG_A, PLUG_B1, PLUG_B2, site_config, status
from .statuskit import plug as plug_view

#: Every key the discovery payloads may use: HA's documented abbreviations (or full names where
#: none exists), per the MQTT discovery documentation's abbreviation tables.
ENTITY_KEYS = {
    "name", "stat_t", "cmd_t", "dev_cla", "stat_cla", "unit_of_meas", "uniq_id", "avty_t",
    "avty", "avty_mode", "dev", "o", "ops", "min", "max", "step", "mode", "pl_on", "pl_off",
    "ent_cat", "val_tpl", "pl_prs", "pattern",
}  # fmt: skip
DEVICE_KEYS = {"ids", "name", "mf", "mdl", "sw", "via_device"}
CONFIG_TOPIC = re.compile(
    r"^(?P<prefix>[^/]+)/(?P<component>sensor|binary_sensor|number|select|text|button)/"
    r"(?P<node>[A-Za-z0-9_-]+)/(?P<object>[A-Za-z0-9_-]+)/config$"
)


class Feed:
    def __init__(self) -> None:
        self.now: ControllerStatus = status()

    def __call__(self) -> ControllerStatus:
        return self.now


Runner = Callable[..., Any]


@pytest.fixture
async def run_iface(
    broker_url: str, prefixes: tuple[str, str], tmp_path: Path
) -> AsyncIterator[Runner]:
    tasks: list[asyncio.Task[None]] = []

    async def start(
        *,
        with_b: bool = True,
        feed: Feed | None = None,
        interval_s: float = 0.2,
        plug_settings: bool = False,
    ) -> tuple[MqttInterface, Feed, FlexManagement]:
        topic_prefix, ha_prefix = prefixes
        cfg = site_config(
            tmp_path,
            with_b=with_b,
            mqtt={"url": broker_url, "topic_prefix": topic_prefix,
                  "discovery_prefix": ha_prefix, "min_interval_s": interval_s},
        )  # fmt: skip
        clock = RealClock()
        flex = FlexManagement(clock, fuse_a=32.0, timeout_s=60)
        feed = feed or Feed()
        settings = None
        if plug_settings:
            specs = charger_specs(cfg.chargers)
            settings = PlugSettings(specs, tmp_path / "plug_settings.json")
        iface = MqttInterface(cfg, clock, feed, flex, settings)
        tasks.append(asyncio.create_task(iface.run()))
        await iface.connection.wait_connected(10)
        return iface, feed, flex

    async def stop_all() -> None:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tasks.clear()

    start.stop_all = stop_all  # type: ignore[attr-defined]
    yield start
    await stop_all()


async def test_state_and_discovery_arrive_retained_and_well_formed(
    run_iface: Runner, broker_url: str, prefixes: tuple[str, str], probe_factory: Any
) -> None:
    topic_prefix, ha_prefix = prefixes
    iface, _, _ = await run_iface()
    base = f"{topic_prefix}/it1"
    live: Probe = await probe_factory(f"{base}/#")
    await live.wait_for(lambda: live.last(f"{base}/plug/wb2_2/status") is not None)
    await live.settle()  # the connect's publishing is over (the state may come twice, see below)
    # a fresh subscriber gets everything retained
    got = (await retained(broker_url, (f"{base}/#", f"{ha_prefix}/#"))).retained_copies()
    assert got[f"{base}/status"] == (b"online", True)
    expect = {
        "site/grid_current_a/l3": b"22.0",
        "site/grid_power_w": b"14500",
        "site/limit_a/l1": b"32.0",
        "site/non_ev_current_a/l1": b"4.1",
        "site/limit_source": b"fuse",
        "site/meter_fallback": b"false",
        "site/ems_limit_a": b"32.0",
        "plug/wb1/status": b"charging",
        "plug/wb1/current_a/l2": b"16.0",
        "plug/wb1/setpoint_a": b"16",
        "plug/wb1/power_w": b"11040",
        "plug/wb1/energy_kwh": b"4.321",
        "plug/wb1/mode": b"fast",
        "plug/wb1/priority": b"5",
        "plug/wb1/reason": b"fair share",
        "plug/wb1/availability": b"online",
        "plug/wb2/mode": b"pv",
        "plug/wb2_2/status": b"offline",
        "plug/wb2_2/availability": b"offline",
    }
    for rel, payload in expect.items():
        assert got[f"{base}/{rel}"] == (payload, True), rel
    configs = {t: json.loads(p) for t, (p, r) in got.items() if t.startswith(ha_prefix + "/")}
    assert all(got[t][1] for t in configs), "discovery configs must be retained"
    check_discovery(configs, ha_prefix, base)
    assert iface.discovery is not None


def check_discovery(
    configs: dict[str, Any], ha_prefix: str, base: str, *, writable: bool = False
) -> None:
    """Topic format, abbreviations, devices, via_device, availability, classes and units."""
    unique_ids: set[str] = set()
    devices: dict[str, dict[str, Any]] = {}
    by_object: dict[str, tuple[str, dict[str, Any]]] = {}
    for topic, cfg in configs.items():
        m = CONFIG_TOPIC.match(topic)
        assert m is not None and m["prefix"] == ha_prefix, topic
        assert m["node"] == "fuseguard_it1"
        assert set(cfg) <= ENTITY_KEYS, (topic, set(cfg) - ENTITY_KEYS)
        assert set(cfg["dev"]) <= DEVICE_KEYS
        assert isinstance(cfg["dev"]["ids"], list) and cfg["dev"]["ids"]
        assert cfg["uniq_id"] not in unique_ids
        unique_ids.add(cfg["uniq_id"])
        if m["component"] == "button":  # stateless: a command only
            assert "stat_t" not in cfg and cfg["cmd_t"].startswith(base + "/")
        else:
            assert cfg["stat_t"].startswith(base + "/")
        assert not ("avty_t" in cfg and "avty" in cfg), "availability_topic xor availability"
        avty = [cfg["avty_t"]] if "avty_t" in cfg else [a["t"] for a in cfg["avty"]]
        assert f"{base}/status" in avty
        devices[cfg["dev"]["ids"][0]] = cfg["dev"]
        by_object[m["object"]] = (m["component"], cfg)
    edge = "fuseguard_it1"
    assert "via_device" not in devices[edge]
    for evse in (EVSE_A, EVSE_B):
        assert devices[f"{edge}_{evse}"]["via_device"] == edge
    assert len(devices) == 3
    comp, grid = by_object["grid_current_l1"]
    assert comp == "sensor"
    assert (grid["dev_cla"], grid["stat_cla"], grid["unit_of_meas"]) == (
        "current", "measurement", "A"
    )  # fmt: skip
    comp, power = by_object[f"{PLUG_A}_power"]
    assert (comp, power["dev_cla"], power["unit_of_meas"]) == ("sensor", "power", "W")
    comp, energy = by_object[f"{PLUG_A}_energy"]
    assert (energy["dev_cla"], energy["stat_cla"], energy["unit_of_meas"]) == (
        "energy", "total_increasing", "kWh"
    )  # fmt: skip
    assert energy["stat_t"] == f"{base}/plug/wb1/energy_kwh"
    comp, number = by_object["ems_limit"]
    assert comp == "number"
    assert number["cmd_t"] == f"{base}/set/ems_limit" and number["max"] == 32.0
    comp, mode = by_object[f"{PLUG_B2}_mode"]
    if writable:
        assert comp == "select" and mode["cmd_t"] == f"{base}/plug/wb2_2/set/mode"
    else:
        assert comp == "sensor" and mode["dev_cla"] == "enum"  # read-only: see docs/mqtt.md
    assert "fast" in mode["ops"]
    assert mode["stat_t"] == f"{base}/plug/wb2_2/mode"
    assert f"{base}/plug/wb2_2/availability" in [a["t"] for a in mode["avty"]]
    # two plugs on one charger: names say which
    assert by_object[f"{PLUG_B1}_status"][1]["name"] == "Left Status"


async def test_commands_round_trip_and_bad_payloads_are_refused(
    run_iface: Runner, prefixes: tuple[str, str], probe_factory: Any
) -> None:
    topic_prefix, _ = prefixes
    base = f"{topic_prefix}/it1"
    _, _, flex = await run_iface()
    probe: Probe = await probe_factory(f"{base}/result", f"{base}/site/#")

    async def command(rel: str, payload: str, *, retain: bool = False) -> dict[str, Any]:
        before = len([m for m in probe.messages if m[0] == f"{base}/result"])
        await probe.publish(f"{base}/{rel}", payload, retain=retain)
        await probe.wait_for(
            lambda: len([m for m in probe.messages if m[0] == f"{base}/result"]) > before
        )
        answer = json.loads(probe.last(f"{base}/result") or b"{}")
        assert answer["command"] == rel
        return answer

    ok = await command("set/ems_limit", "20")
    assert ok["ok"] is True and ok["value"]["CurrentLimit"] == 20.0
    assert flex.settings().current_limit_a == 20.0
    await probe.wait_for(lambda: probe.last(f"{base}/site/ems_limit_a") == b"20.0")
    ok = await command("set/ems_limit", '{"ActivePowerActivation": true, "CurrentLimit": 18.5}')
    assert ok["ok"] is True and flex.settings().activation is True
    assert flex.limit_a() == 18.5
    await probe.wait_for(lambda: probe.last(f"{base}/site/limit_source") == b"ems")
    assert (await command("set/keep_alive", ""))["ok"] is True

    bad = {
        "abc": "invalid_payload",
        "-5": "invalid_payload",
        "20000": "invalid_payload",
        "NaN": "invalid_payload",
        "true": "invalid_payload",
        '{"CurrentLimit": "20"}': "invalid_payload",
        '{"currentlimit": 20}': "invalid_payload",
        '{"CurrentLimit": null}': "invalid_payload",
        "[20]": "invalid_payload",
    }
    for payload, error in bad.items():
        answer = await command("set/ems_limit", payload)
        assert answer["ok"] is False and answer["error"] == error, (payload, answer)
        assert answer["message"]
    assert flex.settings().current_limit_a == 18.5, "no bad payload may be applied"
    assert (await command("set/reboot", "1"))["error"] == "unknown_command"
    assert (await command("plug/nope/set/mode", "pv"))["error"] == "unknown_plug"
    assert (await command("plug/wb1/set/mode", "turbo"))["error"] == "invalid_payload"
    assert (await command("plug/wb1/set/mode", "pv"))["error"] == "read_only"
    assert (await command("plug/wb1/set/priority", "1.5"))["error"] == "invalid_payload"
    assert (await command("plug/wb1/set/priority", "3"))["error"] == "read_only"


async def test_plug_mode_and_priority_commands_with_runtime_settings(
    run_iface: Runner, broker_url: str, prefixes: tuple[str, str], probe_factory: Any
) -> None:
    topic_prefix, ha_prefix = prefixes
    base = f"{topic_prefix}/it1"
    await run_iface()  # read-only first: mode/priority are sensors ...
    sensor_mode = f"{ha_prefix}/sensor/fuseguard_it1/{PLUG_A}_mode/config"
    assert (await retained(broker_url, (sensor_mode,))).latest()[sensor_mode][0]
    await run_iface.stop_all()  # type: ignore[attr-defined]
    iface, _, _ = await run_iface(plug_settings=True)  # ... then writable
    assert iface.plug_settings is not None
    probe: Probe = await probe_factory(f"{base}/result", f"{base}/plug/#")
    await probe.wait_for(lambda: probe.last(f"{base}/plug/wb2_2/mode") == b"pv")

    async def command(rel: str, payload: str) -> dict[str, Any]:
        probe.messages[:] = [m for m in probe.messages if m[0] != f"{base}/result"]
        await probe.publish(f"{base}/{rel}", payload)
        await probe.wait_for(lambda: probe.last(f"{base}/result") is not None)
        return dict(json.loads(probe.last(f"{base}/result") or b"{}"))

    assert (await command("plug/wb2_2/set/mode", "off"))["value"] == "off"
    await probe.wait_for(lambda: probe.last(f"{base}/plug/wb2_2/mode") == b"off")
    assert iface.plug_settings.all()["wb2/2"].mode.value == "off"
    assert (await command("plug/wb1/set/priority", "-7"))["value"] == -7
    await probe.wait_for(lambda: probe.last(f"{base}/plug/wb1/priority") == b"-7")
    answer = await command("plug/wb1/set/priority", "200")
    assert (answer["ok"], answer["error"]) == (False, "invalid_value")
    assert (await command("plug/wb1/set/mode", "warp"))["error"] == "invalid_payload"
    assert iface.plug_settings.all()["wb1"].priority == -7
    # writable: Home Assistant gets a select for the mode and a number for the priority
    got = {
        t: v for t, v in (await retained(broker_url, (f"{ha_prefix}/#",))).latest().items() if v[0]
    }
    select = json.loads(got[f"{ha_prefix}/select/fuseguard_it1/{PLUG_A}_mode/config"][0])
    assert select["cmd_t"] == f"{base}/plug/wb1/set/mode"
    assert select["stat_t"] == f"{base}/plug/wb1/mode"
    assert select["ops"] == ["fast", "pv", "minpv", "off"]
    number = json.loads(got[f"{ha_prefix}/number/fuseguard_it1/{PLUG_A}_priority/config"][0])
    assert (number["min"], number["max"], number["step"]) == (-100, 100, 1)
    # the read-only sensors of the first run are stale configs: cleared
    assert sensor_mode not in got


async def test_a_departure_set_the_way_home_assistant_does(
    run_iface: Runner, broker_url: str, prefixes: tuple[str, str], probe_factory: Any
) -> None:
    """Through the broker, with the discovery configs as Home Assistant reads them: the text
    sets the time, the number the need, the button clears; the state topics follow."""
    topic_prefix, ha_prefix = prefixes
    base = f"{topic_prefix}/it1"
    iface, _, _ = await run_iface(plug_settings=True)
    assert iface.plug_settings is not None
    probe: Probe = await probe_factory(f"{base}/result", f"{base}/plug/wb1/#")
    await probe.wait_for(lambda: probe.last(f"{base}/plug/wb1/mode") is not None)
    configs = {
        t: json.loads(p)
        for t, (p, _) in (await retained(broker_url, (f"{ha_prefix}/#",))).latest().items()
        if p
    }
    check_discovery(configs, ha_prefix, base, writable=True)
    node = f"{ha_prefix}/{{}}/fuseguard_it1/{PLUG_A}_{{}}/config"
    text = configs[node.format("text", "departure_time")]
    number = configs[node.format("number", "departure_need")]
    button = configs[node.format("button", "departure_clear")]
    sensor = configs[node.format("sensor", "departure_at")]
    # nothing announced yet: empty state, and nothing retained for it
    for cfg in (text, number, sensor):
        assert iface.messages()[cfg["stat_t"]] == ""

    async def command(topic: str, payload: str) -> dict[str, Any]:
        probe.messages[:] = [m for m in probe.messages if m[0] != f"{base}/result"]
        await probe.publish(topic, payload)
        await probe.wait_for(lambda: probe.last(f"{base}/result") is not None)
        return dict(json.loads(probe.last(f"{base}/result") or b"{}"))

    # what a user types into the text: a time of day two hours from now, local time
    hhmm = f"{datetime.now().astimezone() + timedelta(hours=2):%H:%M}"
    assert re.match(text["pattern"], hhmm)
    answer = await command(text["cmd_t"], hhmm)
    assert (answer["ok"], answer["value"]["in_force"]) == (True, False)  # pending half
    await probe.wait_for(lambda: probe.last(text["stat_t"]) == hhmm.encode())
    answer = await command(number["cmd_t"], "20.5")  # HA's number sends a plain number
    assert (answer["ok"], answer["value"]["in_force"]) == (True, True)
    await probe.wait_for(lambda: probe.last(number["stat_t"]) == b"20.500")
    await probe.wait_for(lambda: bool(probe.last(sensor["stat_t"])))
    shown = datetime.fromisoformat((probe.last(sensor["stat_t"]) or b"").decode())
    assert shown.utcoffset() is not None and f"{shown.astimezone():%H:%M}" == hhmm
    dep = iface.plug_settings.departure_of("wb1", datetime.now(UTC))
    assert dep is not None and dep.at == shown and dep.need_wh == 20500.0
    state = (await retained(broker_url, (f"{base}/plug/wb1/#",))).retained_copies()
    assert state[sensor["stat_t"]] == (shown.isoformat().encode(), True)
    # the button clears; the state topics go empty and their retained copies away
    answer = await command(button["cmd_t"], button["pl_prs"])
    assert answer == {"command": "plug/wb1/set/departure", "ok": True, "value": None}
    for cfg in (text, number, sensor):
        await probe.wait_for(lambda cfg=cfg: probe.last(cfg["stat_t"]) == b"")
    assert iface.plug_settings.departure_of("wb1", datetime.now(UTC)) is None
    state = (await retained(broker_url, (f"{base}/plug/wb1/#",))).retained_copies()
    assert not {cfg["stat_t"] for cfg in (text, number, sensor)} & set(state)
    assert state[f"{base}/plug/wb1/mode"] == (b"fast", True)


async def test_retained_command_is_not_applied_on_connect(
    run_iface: Runner, prefixes: tuple[str, str], probe_factory: Any
) -> None:
    """A retained command must not fire again on every (re)connect: answered, not applied."""
    topic_prefix, _ = prefixes
    base = f"{topic_prefix}/it1"
    probe: Probe = await probe_factory(f"{base}/result")
    await probe.publish(f"{base}/set/ems_limit", "12", retain=True)
    _, _, flex = await run_iface()
    await probe.wait_for(lambda: probe.last(f"{base}/result") is not None)
    answer = json.loads(probe.last(f"{base}/result") or b"{}")
    assert (answer["ok"], answer["error"]) == (False, "retained")
    assert flex.settings().current_limit_a == 32.0
    await probe.publish(f"{base}/set/ems_limit", b"", retain=True)  # clear it again


async def test_changes_are_published_at_most_once_per_interval(
    run_iface: Runner, prefixes: tuple[str, str], probe_factory: Any
) -> None:
    topic_prefix, _ = prefixes
    base = f"{topic_prefix}/it1"
    topic = f"{base}/site/grid_current_a/l1"
    _, feed, _ = await run_iface(interval_s=0.5)
    probe: Probe = await probe_factory(topic)
    await probe.wait_for(lambda: probe.last(topic) is not None)
    probe.messages.clear()
    loop = asyncio.get_running_loop()
    start = loop.time()
    amps = 10.0
    while loop.time() - start < 2.6:  # a new value every 50 ms
        amps += 0.5
        feed.now = status(grid_current_a=Phases(amps, 1.0, 1.0))
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.7)
    received = [p for t, p, _ in probe.messages if t == topic]
    # a new value every 50 ms for 3.3 s: one publish per 0.5 s at most (7), not one per change
    assert 3 <= len(received) <= 7, received
    assert received[-1] == f"{amps:.1f}".encode(), "the last value is always published"


async def test_removed_charger_loses_its_entities(
    run_iface: Runner, broker_url: str, prefixes: tuple[str, str]
) -> None:
    _, ha_prefix = prefixes
    await run_iface(with_b=True)
    before = (await retained(broker_url, (f"{ha_prefix}/#",))).latest()
    b_topics = {t for t in before if PLUG_B1 in t or PLUG_B2 in t}
    assert b_topics and all(before[t][0] for t in b_topics)
    await run_iface.stop_all()  # type: ignore[attr-defined]
    await run_iface(with_b=False)
    await retained(broker_url, (f"{ha_prefix}/#",), quiet_s=1.0)  # let the edge clean up
    after = {
        t: p
        for t, (p, _) in (await retained(broker_url, (f"{ha_prefix}/#",))).latest().items()
        if p
    }
    assert not (b_topics & set(after)), "wb2's configs must be cleared (empty retained)"
    assert {t for t in after if PLUG_A in t}, "wb1 stays"


async def test_home_assistant_birth_republishes(
    run_iface: Runner, prefixes: tuple[str, str], probe_factory: Any
) -> None:
    _, ha_prefix = prefixes
    await run_iface()
    probe: Probe = await probe_factory(f"{ha_prefix}/number/#")
    await probe.settle()
    probe.messages.clear()
    await probe.publish(f"{ha_prefix}/status", "online")
    await probe.wait_for(lambda: any(t.endswith("/ems_limit/config") for t, _, _ in probe.messages))


async def test_reconnects_and_republishes_after_losing_the_broker(
    run_iface: Runner, prefixes: tuple[str, str], probe_factory: Any, broker_url: str
) -> None:
    """A second client with the edge's client id takes its session over (the broker drops the
    edge's connection); the edge connects again, says ``online`` and takes commands."""
    topic_prefix, _ = prefixes
    base = f"{topic_prefix}/it1"
    iface, _, flex = await run_iface()
    probe: Probe = await probe_factory(f"{base}/status", f"{base}/result")
    await probe.wait_for(lambda: probe.last(f"{base}/status") == b"online")
    probe.messages.clear()
    intruder = aiomqtt.Client(
        "127.0.0.1", int(broker_url.rsplit(":", 1)[1]), identifier=iface.connection.client_id
    )
    async with intruder:
        await asyncio.sleep(0.2)
    await probe.wait_for(lambda: probe.last(f"{base}/status") == b"online", 15)
    await iface.connection.wait_connected(15)
    await probe.publish(f"{base}/set/ems_limit", "17")
    await probe.wait_for(lambda: probe.last(f"{base}/result") is not None)
    assert flex.settings().current_limit_a == 17.0


def test_discovery_and_state_agree_on_plug_keys_even_when_ids_collide(tmp_path: Path) -> None:
    """``wb1/2`` (second plug of wb1) and a charger named ``wb1_2`` need distinct topic keys,
    and every discovery state topic must be one the edge publishes."""
    cfg = FuseguardConfig.model_validate(
        {
            "data_dir": str(tmp_path),
            "site": {"edge_id": "it2", "main_fuse_a": 32},
            "chargers": [
                {"id": "wb1", "evse_uuid": EVSE_A,
                 "plugs": [{"uuid": PLUG_A, "label": "A"}, {"uuid": PLUG_B1, "label": "B"}]},
                {"id": "wb1_2", "evse_uuid": EVSE_B, "plugs": [{"uuid": PLUG_B2, "label": "C"}]},
            ],
            "mqtt": {"url": "mqtt://127.0.0.1:1"},
        }
    )  # fmt: skip
    plugs = (
        plug_view("wb1", EVSE_A, "main"),
        plug_view("wb1/2", EVSE_A, "main"),
        plug_view("wb1_2", EVSE_B, "main"),
    )
    clock = RealClock()
    iface = MqttInterface(cfg, clock, lambda: status(plugs=plugs), FlexManagement(clock, fuse_a=32))
    assert len(set(iface.keys.values())) == 3
    published = set(iface.messages())
    assert iface.discovery is not None
    for payload in iface.discovery.messages().values():
        cfg_json = json.loads(payload)
        assert cfg_json["stat_t"] in published, cfg_json["stat_t"]
        for avty in cfg_json.get("avty", []):
            assert avty["t"] in published or avty["t"] == iface.topics.availability
