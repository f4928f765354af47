"""A departure set in halves (``set/departure_time``, ``set/departure_need``), as Home
Assistant's UI sets it: the handler's pending half, the state topics and the HA entities."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import pytest

from fuseguard.api.mqtt.commands import PENDING_TTL, CommandHandler
from fuseguard.api.mqtt.discovery import DEPARTURE_TIME_PATTERN
from fuseguard.api.mqtt.service import MqttInterface
from fuseguard.api.mqtt.state import DepartureView, Topics, departure_payloads
from fuseguard.config.controller import charger_specs
from fuseguard.control.flex import FlexManagement
from fuseguard.control.plug_settings import PlugSettings
from fuseguard.control.types import ChargerSpec
from fuseguard.model.clock import VirtualClock

from .statuskit import PLUG_A, PLUG_B1, site_config, status

ZURICH = ZoneInfo("Europe/Zurich")
#: Monday 2026-01-05 06:00 in Zurich (+01:00)
MORNING = datetime(2026, 1, 5, 5, 0, tzinfo=UTC)


class Edge:
    """One plug ``cp1`` with runtime settings, a handler in Zurich time, a virtual clock."""

    def __init__(self, start: datetime = MORNING, *, path: Path | None = None) -> None:
        self.clock = VirtualClock(start)
        self.settings = PlugSettings([ChargerSpec(id="cp1")], path)
        self.handler = CommandHandler(
            Topics("fg/e1"), None, {"cp1": "cp1"}, self.settings, clock=self.clock, tz=ZURICH
        )

    def send(self, name: str, payload: str, *, retained: bool = False) -> dict[str, Any]:
        topic = f"fg/e1/plug/cp1/set/{name}"
        result = self.handler.handle(topic, payload.encode(), retained=retained)
        assert result is not None
        answer: dict[str, Any] = json.loads(result.payload())
        assert answer["command"] == f"plug/cp1/set/{name}"
        return answer

    def in_force(self) -> tuple[datetime, float] | None:
        dep = self.settings.departure_of("cp1", self.clock.now())
        return None if dep is None else (dep.at, dep.need_wh)

    def shown(self) -> tuple[datetime | None, float | None]:
        return self.handler.departure_shown("cp1", self.clock.now())


def zurich(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=ZURICH)


def test_time_then_need_sets_one_departure() -> None:
    edge = Edge()
    answer = edge.send("departure_time", "07:30")
    assert answer == {"command": "plug/cp1/set/departure_time", "ok": True,
                      "value": {"at": "2026-01-05T07:30:00+01:00", "need_wh": None,
                                "in_force": False}}  # fmt: skip
    assert edge.in_force() is None, "half a departure is not a departure"
    assert edge.shown() == (zurich(5, 7, 30), None)
    answer = edge.send("departure_need", "20")
    assert answer["value"] == {"at": "2026-01-05T07:30:00+01:00", "need_wh": 20000.0,
                               "in_force": True}  # fmt: skip
    assert edge.in_force() == (zurich(5, 7, 30), 20000.0)
    assert edge.shown() == (zurich(5, 7, 30), 20000.0)


def test_need_then_time_sets_one_departure() -> None:
    edge = Edge()
    assert edge.send("departure_need", "12.5")["value"] == {
        "at": None, "need_wh": 12500.0, "in_force": False
    }  # fmt: skip
    assert edge.in_force() is None
    assert edge.shown() == (None, 12500.0)
    assert edge.send("departure_time", "8:05")["value"]["in_force"] is True
    assert edge.in_force() == (zurich(5, 8, 5), 12500.0)


def test_a_half_changes_only_its_half_of_the_departure_in_force() -> None:
    edge = Edge()
    at = (MORNING + timedelta(hours=5)).isoformat()
    assert edge.send("departure", json.dumps({"at": at, "need_wh": 18000}))["ok"] is True
    assert edge.send("departure_need", "30")["value"]["in_force"] is True
    assert edge.in_force() == (MORNING + timedelta(hours=5), 30000.0)
    assert edge.send("departure_time", "17:45")["value"]["in_force"] is True
    assert edge.in_force() == (zurich(5, 17, 45), 30000.0)
    # a second time replaces the first half only, again
    edge.send("departure_time", "2026-01-06T06:15:00+00:00")
    assert edge.in_force() == (datetime(2026, 1, 6, 6, 15, tzinfo=UTC), 30000.0)


def test_hh_mm_is_the_next_such_local_time_today_or_tomorrow() -> None:
    edge = Edge()  # 06:00 in Zurich
    edge.send("departure_need", "10")
    for text, expect in (
        ("06:01", zurich(5, 6, 1)),  # later today
        ("06:00", zurich(6, 6, 0)),  # now: tomorrow
        ("05:59", zurich(6, 5, 59)),  # passed: tomorrow
        ("00:00", zurich(6, 0, 0)),
        ("23:59", zurich(5, 23, 59)),
    ):
        assert edge.send("departure_time", text)["ok"] is True, text
        assert edge.in_force() == (expect, 10000.0), text


def test_hh_mm_tomorrow_takes_tomorrows_offset_across_daylight_saving() -> None:
    # Saturday 2026-03-28 20:00 in Zurich (+01:00); summer time starts on Sunday at 02:00
    edge = Edge(datetime(2026, 3, 28, 19, 0, tzinfo=UTC))
    edge.send("departure_need", "10")
    edge.send("departure_time", "07:30")
    got = edge.in_force()
    assert got is not None
    assert got[0] == datetime(2026, 3, 29, 5, 30, tzinfo=UTC)  # 07:30 +02:00
    assert got[0].utcoffset() == timedelta(hours=2)


@pytest.fixture
def kolkata_process() -> Iterator[None]:
    """The process's local zone is Asia/Kolkata (+05:30, no daylight saving) for one test."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        yield
    finally:
        mp.undo()
        time.tzset()


@pytest.mark.usefixtures("kolkata_process")
def test_without_a_zone_hh_mm_is_the_process_local_time() -> None:
    clock = VirtualClock(MORNING)  # 10:30 in Kolkata
    settings = PlugSettings([ChargerSpec(id="cp1")])
    handler = CommandHandler(Topics("fg/e1"), None, {"cp1": "cp1"}, settings, clock=clock)
    for name, payload in (("departure_time", "09:00"), ("departure_need", "5")):
        result = handler.handle(f"fg/e1/plug/cp1/set/{name}", payload.encode(), retained=False)
        assert result is not None and result.ok, result
    dep = settings.departure_of("cp1", clock.now())
    assert dep is not None
    assert dep.at == datetime(2026, 1, 6, 3, 30, tzinfo=UTC)  # tomorrow 09:00 +05:30
    # the state's time of day is in the same zone
    shown = departure_payloads(DepartureView(dep.at, dep.need_wh))
    assert shown == {"departure_at": "2026-01-06T09:00:00+05:30", "departure_time": "09:00",
                     "departure_need_kwh": "5.000"}  # fmt: skip


def test_iso_times_with_an_offset_are_taken_as_given() -> None:
    edge = Edge()
    edge.send("departure_time", "2026-01-05T19:00:00-05:00")
    edge.send("departure_need", "7.25")
    assert edge.in_force() == (datetime(2026, 1, 6, 0, 0, tzinfo=UTC), 7250.0)


def test_bad_halves_are_refused_and_change_nothing() -> None:
    edge = Edge()
    edge.send("departure_need", "15")  # a pending half ...
    assert edge.shown() == (None, 15000.0)
    refused = {
        ("departure_time", "7.30"): "invalid_payload",
        ("departure_time", "24:00"): "invalid_payload",
        ("departure_time", "07:60"): "invalid_payload",
        ("departure_time", "073"): "invalid_payload",
        ("departure_time", "\u0660\u0667:\u0663\u0660"): "invalid_payload",  # Arabic digits
        ("departure_time", "\uff10\uff17:\uff13\uff10"): "invalid_payload",  # fullwidth
        ("departure_time", "tomorrow"): "invalid_payload",
        ("departure_time", '"07:30"'): "invalid_payload",
        ("departure_time", "2026-13-01T07:00:00+01:00"): "invalid_payload",
        ("departure_time", "2026-01-06T07:00:00"): "invalid_value",  # no offset
        ("departure_time", "2026-01-05T05:59:00+01:00"): "invalid_value",  # passed
        ("departure_time", "2026-01-05T06:00:00+01:00"): "invalid_value",  # now
        ("departure_need", "abc"): "invalid_payload",
        ("departure_need", "NaN"): "invalid_payload",
        ("departure_need", "Infinity"): "invalid_payload",
        ("departure_need", "-inf"): "invalid_payload",
        ("departure_need", "1_0"): "invalid_payload",
        ("departure_need", "\uff15"): "invalid_payload",
        ("departure_need", "true"): "invalid_payload",
        ("departure_need", '"5"'): "invalid_payload",
        ("departure_need", "[5]"): "invalid_payload",
        ("departure_need", "0"): "invalid_value",
        ("departure_need", "-1"): "invalid_value",
        ("departure_need", "250.001"): "invalid_value",
        ("departure_need", "1e999"): "invalid_value",  # inf after parsing
    }
    for (name, payload), error in refused.items():
        answer = edge.send(name, payload)
        assert (answer["ok"], answer["error"]) == (False, error), (name, payload, answer)
        assert answer["message"]
    assert edge.in_force() is None
    assert edge.shown() == (None, 15000.0), "... untouched by the refused commands"
    # the edge of the range is taken
    assert edge.send("departure_need", "250")["value"]["need_wh"] == 250000.0
    # a departure in force is untouched by refusals too
    edge.send("departure_time", "07:00")
    before = edge.in_force()
    assert before == (zurich(5, 7, 0), 250000.0)
    for (name, payload), _ in refused.items():
        edge.send(name, payload)
    assert edge.in_force() == before
    too_long = edge.send("departure_time", "0" * 2000)
    assert too_long["error"] == "too_large"
    retained = edge.send("departure_need", "1", retained=True)
    assert retained["error"] == "retained"
    assert edge.in_force() == before


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("departure_time", ""),
        ("departure_time", "null"),
        ("departure_need", ""),
        ("departure_need", " null\n"),
        ("departure", "null"),  # Home Assistant's "Clear departure" button
    ],
)
def test_empty_or_null_clears_the_departure_and_the_pending_halves(name: str, payload: str) -> None:
    edge = Edge()
    edge.send("departure_time", "07:30")
    edge.send("departure_need", "20")
    assert edge.in_force() is not None
    answer = edge.send(name, payload)
    assert answer["ok"] is True
    assert edge.in_force() is None and edge.shown() == (None, None)
    edge.send("departure_need", "9")  # pending ...
    assert edge.shown() == (None, 9000.0)
    edge.send(name, payload)  # ... cleared as well
    assert edge.shown() == (None, None)
    edge.send("departure_time", "07:30")  # and no old half comes back
    assert edge.in_force() is None and edge.shown() == (zurich(5, 7, 30), None)


async def test_a_pending_half_expires() -> None:
    edge = Edge()
    edge.send("departure_need", "20")
    await edge.clock.advance(PENDING_TTL.total_seconds() - 1)
    assert edge.shown() == (None, 20000.0)
    await edge.clock.advance(2)
    assert edge.shown() == (None, None)
    assert edge.send("departure_time", "23:00")["value"]["in_force"] is False
    # a pending time is gone once that time has passed, even within the TTL
    edge.send("departure_time", "2026-01-05T07:20:00+01:00")  # 20 min from now (07:00)
    await edge.clock.advance(20 * 60)
    assert edge.shown() == (None, None)
    assert edge.send("departure_need", "5")["value"] == {
        "at": None, "need_wh": 5000.0, "in_force": False
    }  # fmt: skip


def test_a_departure_set_whole_elsewhere_supersedes_a_pending_half() -> None:
    edge = Edge()
    edge.send("departure_need", "20")
    at = MORNING + timedelta(hours=2)
    edge.settings.set_departure("cp1", at, 5000.0, now=MORNING, source="web")
    assert edge.shown() == (at, 5000.0)
    edge.settings.set_departure("cp1", None, now=MORNING, source="web")
    assert edge.shown() == (None, None), "the old pending need must not come back"


def test_a_half_that_cannot_be_saved_is_not_applied_and_the_pending_half_stays(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    edge = Edge(path=blocker / "plug_settings.json")
    edge.send("departure_time", "07:30")
    answer = edge.send("departure_need", "20")
    assert (answer["ok"], answer["error"]) == (False, "storage_error")
    assert edge.in_force() is None
    assert edge.shown() == (zurich(5, 7, 30), None)


def test_read_only_edges_refuse_the_halves_after_checking_the_payload() -> None:
    clock = VirtualClock(MORNING)
    handler = CommandHandler(Topics("fg/e1"), None, {"cp1": "cp1"}, None, clock=clock)
    for name, payload, error in (
        ("departure_time", "07:30", "read_only"),
        ("departure_need", "20", "read_only"),
        ("departure_need", "", "read_only"),
        ("departure_time", "soon", "invalid_payload"),
    ):
        result = handler.handle(f"fg/e1/plug/cp1/set/{name}", payload.encode(), retained=False)
        assert result is not None and result.error == error, (name, payload)
    assert handler.departure_shown("cp1", clock.now()) == (None, None)


# --- state topics ---------------------------------------------------------------------------------


def _iface(tmp_path: Path, *, writable: bool = True) -> tuple[MqttInterface, VirtualClock]:
    cfg = site_config(tmp_path, mqtt={"url": "mqtt://127.0.0.1:1"})
    clock = VirtualClock(MORNING)
    settings = PlugSettings(charger_specs(cfg.chargers)) if writable else None
    flex = FlexManagement(clock, fuse_a=32.0)
    return MqttInterface(cfg, clock, status, flex, settings, tz=ZURICH), clock


def _departure_state(iface: MqttInterface, key: str) -> dict[str, str]:
    messages = iface.messages()
    return {
        name: messages[f"fuseguard/it1/plug/{key}/{name}"]
        for name in ("departure_at", "departure_time", "departure_need_kwh")
    }


async def test_state_topics_show_the_departure_in_force_pending_or_none(tmp_path: Path) -> None:
    iface, clock = _iface(tmp_path)
    none = {"departure_at": "", "departure_time": "", "departure_need_kwh": ""}
    assert _departure_state(iface, "wb1") == none
    assert _departure_state(iface, "wb2_2") == none

    def send(name: str, payload: str) -> None:
        topic = f"fuseguard/it1/plug/wb1/set/{name}"
        result = iface.commands.handle(topic, payload.encode(), retained=False)
        assert result is not None and result.ok, result

    send("departure_need", "18.5")  # pending: shown on the same topics
    assert _departure_state(iface, "wb1") == {**none, "departure_need_kwh": "18.500"}
    send("departure_time", "07:30")
    assert _departure_state(iface, "wb1") == {
        "departure_at": "2026-01-05T07:30:00+01:00",
        "departure_time": "07:30",
        "departure_need_kwh": "18.500",
    }
    assert _departure_state(iface, "wb2_2") == none, "other plugs keep theirs"
    await clock.advance(90 * 60)  # 07:30 in Zurich: the departure's time has passed
    assert _departure_state(iface, "wb1") == none
    # a departure stored in UTC (the JSON command) is shown in local time
    at = datetime(2026, 1, 5, 22, 5, 30, 123456, tzinfo=UTC)
    send("departure", json.dumps({"at": at.isoformat(), "need_wh": 1234.4}))
    assert _departure_state(iface, "wb1") == {
        "departure_at": "2026-01-05T23:05:30+01:00",
        "departure_time": "23:05",
        "departure_need_kwh": "1.234",
    }
    send("departure", "null")
    assert _departure_state(iface, "wb1") == none


def test_a_departure_at_the_end_of_the_calendar_does_not_stop_the_publisher(
    tmp_path: Path,
) -> None:
    iface, _ = _iface(tmp_path)
    for name, payload in (
        ("departure", json.dumps({"at": "9999-12-31T23:59:00-05:00", "need_wh": 1000})),
        ("departure_time", "9999-12-31T23:59:00-05:00"),
    ):
        result = iface.commands.handle(
            f"fuseguard/it1/plug/wb1/set/{name}", payload.encode(), retained=False
        )
        assert result is not None and result.ok, result
        # 9999-12-31T23:59-05:00 has no Zurich time (year 10000): shown as given
        assert _departure_state(iface, "wb1") == {
            "departure_at": "9999-12-31T23:59:00-05:00",
            "departure_time": "23:59",
            "departure_need_kwh": "1.000",
        }


def test_read_only_edges_publish_no_departure_topics(tmp_path: Path) -> None:
    iface, _ = _iface(tmp_path, writable=False)
    assert not [t for t in iface.messages() if "/departure" in t]


# --- Home Assistant discovery -------------------------------------------------------------------


def _configs(iface: MqttInterface) -> dict[str, tuple[str, dict[str, Any]]]:
    """object id -> (component, config)."""
    assert iface.discovery is not None
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for topic, payload in iface.discovery.messages().items():
        _, component, _, object_id, _ = topic.split("/")
        out[object_id] = (component, json.loads(payload))
    return out


def _subset(cfg: dict[str, Any], expect: dict[str, Any]) -> dict[str, Any]:
    return {k: cfg.get(k) for k in expect}


def test_writable_edges_get_departure_entities(tmp_path: Path) -> None:
    iface, _ = _iface(tmp_path)
    configs = _configs(iface)
    base = "fuseguard/it1"
    avty = [{"t": f"{base}/status"}, {"t": f"{base}/plug/wb1/availability"}]
    common = {"avty": avty, "avty_mode": "all"}
    expect: dict[str, tuple[str, dict[str, Any]]] = {
        "departure_time": ("text", {
            "name": "Departure",
            "stat_t": f"{base}/plug/wb1/departure_time",
            "cmd_t": f"{base}/plug/wb1/set/departure_time",
            "pattern": DEPARTURE_TIME_PATTERN,
            "max": 5,
        }),
        "departure_need": ("number", {
            "name": "Energy need",
            "stat_t": f"{base}/plug/wb1/departure_need_kwh",
            "cmd_t": f"{base}/plug/wb1/set/departure_need",
            "min": 0.1, "max": 250.0, "step": 0.1, "mode": "box",
            "dev_cla": "energy", "unit_of_meas": "kWh",
        }),
        "departure_clear": ("button", {
            "name": "Clear departure",
            "cmd_t": f"{base}/plug/wb1/set/departure",
            "pl_prs": "null",
            "stat_t": None,  # a button has no state
        }),
        "departure_at": ("sensor", {
            "name": "Departure",
            "stat_t": f"{base}/plug/wb1/departure_at",
            "dev_cla": "timestamp",
        }),
    }  # fmt: skip
    for what, (component, body) in expect.items():
        got_component, cfg = configs[f"{PLUG_A}_{what}"]
        assert got_component == component, what
        assert _subset(cfg, {**body, **common}) == {**body, **common}, what
        assert cfg["uniq_id"] == f"fuseguard_it1_{PLUG_A}_{what}"
    # plugs of a two-plug charger say which plug
    assert configs[f"{PLUG_B1}_departure_time"][1]["name"] == "Left Departure"
    # every departure state topic is one the edge publishes
    published = iface.messages()
    for object_id, (_, cfg) in configs.items():
        if "departure" in object_id and "stat_t" in cfg:
            assert cfg["stat_t"] in published, cfg["stat_t"]


def test_the_empty_state_means_unknown_to_home_assistant(tmp_path: Path) -> None:
    """HA's number ignores an empty payload and its timestamp sensor logs it as invalid: both
    get ``None`` (unknown) through the value template. The text's pattern admits the empty
    state and every ``HH:MM`` the edge publishes (HA refuses a state its pattern refuses)."""
    configs = _configs(_iface(tmp_path)[0])
    env = jinja2.Environment(autoescape=False)  # plain text, as HA renders it
    for what, real in (("departure_need", "18.500"), ("departure_at", "2026-01-05T07:30:00+01:00")):
        template = env.from_string(configs[f"{PLUG_A}_{what}"][1]["val_tpl"])
        assert template.render(value="") == "None"
        assert template.render(value=real) == real
    pattern = re.compile(configs[f"{PLUG_A}_departure_time"][1]["pattern"])
    for ok in ("", "00:00", "07:30", "7:30", "19:05", "23:59"):
        assert pattern.match(ok), ok
    for bad in ("24:00", "7:3", "07:60", "0730", "x", "07:30 "):
        assert not pattern.match(bad), bad
    for minute in range(0, 24 * 60, 7):
        at = MORNING + timedelta(minutes=minute)
        shown = departure_payloads(DepartureView(at, 1.0), ZURICH)["departure_time"]
        assert pattern.match(shown), shown


def test_read_only_edges_get_no_departure_entities(tmp_path: Path) -> None:
    configs = _configs(_iface(tmp_path, writable=False)[0])
    assert not [o for o in configs if "departure" in o]
    assert configs[f"{PLUG_A}_mode"][0] == "sensor"
