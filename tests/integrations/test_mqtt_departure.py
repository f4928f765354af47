"""The MQTT departure command (``plug/<plug>/set/departure``) through the one settings path."""

from __future__ import annotations

import json
from datetime import timedelta

from fuseguard.api.mqtt.commands import CommandHandler
from fuseguard.api.mqtt.state import Topics
from fuseguard.control.plug_settings import PlugSettings
from fuseguard.control.types import ChargerSpec
from fuseguard.model.clock import VirtualClock


def _handler(settings: PlugSettings | None, clock: VirtualClock) -> CommandHandler:
    return CommandHandler(Topics("fg/e1"), None, {"cp1": "cp1"}, settings, clock=clock)


def _send(handler: CommandHandler, payload: str) -> dict[str, object]:
    result = handler.handle("fg/e1/plug/cp1/set/departure", payload.encode(), retained=False)
    assert result is not None
    return dict(json.loads(result.payload()))


def test_announce_and_clear_a_departure() -> None:
    clock = VirtualClock()
    settings = PlugSettings([ChargerSpec(id="cp1")])
    handler = _handler(settings, clock)
    at = clock.now() + timedelta(hours=4)
    answer = _send(handler, json.dumps({"at": at.isoformat(), "need_wh": 18000}))
    assert answer["ok"] is True
    assert answer["value"] == {"at": at.isoformat(), "need_wh": 18000}
    dep = settings.departure_of("cp1", clock.now())
    assert dep is not None and dep.at == at and dep.need_wh == 18000.0
    assert _send(handler, "null") == {"command": "plug/cp1/set/departure", "ok": True,
                                      "value": None}  # fmt: skip
    assert settings.departure_of("cp1", clock.now()) is None


def test_bad_departures_are_refused_and_change_nothing() -> None:
    clock = VirtualClock()
    settings = PlugSettings([ChargerSpec(id="cp1")])
    handler = _handler(settings, clock)
    at = (clock.now() + timedelta(hours=1)).isoformat()
    for payload, error in (
        ("soon", "invalid_payload"),
        ("[1]", "invalid_payload"),
        (json.dumps({"at": at}), "invalid_payload"),
        (json.dumps({"at": at, "need_wh": 5, "x": 1}), "invalid_payload"),
        (json.dumps({"at": 5, "need_wh": 5}), "invalid_payload"),
        (json.dumps({"at": "yesterday", "need_wh": 5}), "invalid_value"),
        (json.dumps({"at": "2026-11-30T12:00:00", "need_wh": 5}), "invalid_value"),
        (json.dumps({"at": at, "need_wh": -1}), "invalid_value"),
        (json.dumps({"at": at, "need_wh": 1e12}), "invalid_value"),
        (json.dumps({"at": at, "need_wh": "5"}), "invalid_value"),
        ('{"at": "' + at + '", "need_wh": NaN}', "invalid_value"),
    ):
        answer = _send(handler, payload)
        assert (answer["ok"], answer["error"]) == (False, error), payload
    assert settings.departure_of("cp1", clock.now()) is None
    read_only = _send(_handler(None, clock), json.dumps({"at": at, "need_wh": 5}))
    assert read_only["error"] == "read_only"


def test_priority_is_an_ascii_json_number() -> None:
    # round 9: float() also took "1_0" (10) and Unicode digits ("٥", "５": 5)
    clock = VirtualClock()
    settings = PlugSettings([ChargerSpec(id="cp1")])
    handler = _handler(settings, clock)
    topic = "fg/e1/plug/cp1/set/priority"
    for bad in ("1_0", "\u0665", "\uff15", "+5", "0x5", "5.5", "NaN", "Infinity", " "):
        result = handler.handle(topic, bad.encode(), retained=False)
        assert result is not None
        assert (result.ok, result.error) == (False, "invalid_payload"), bad
    assert settings.all()["cp1"].priority == 0
    for good, value in (("7", 7), ("-3", -3), (" 5\n", 5), ("5.0", 5), ("1e1", 10)):
        result = handler.handle(topic, good.encode(), retained=False)
        assert result is not None
        assert (result.ok, result.value) == (True, value), good
