"""MQTT commands: parse, validate, apply through the same code path as the APIs, answer.

Every command message gets exactly one answer on ``<base>/result`` (JSON, not retained)::

    {"command": "set/ems_limit", "ok": true, "value": {...}}
    {"command": "set/ems_limit", "ok": false, "error": "invalid_payload", "message": "..."}

A bad payload is logged and answered, never applied. Retained command messages are refused
(a command must not fire again on every reconnect). The EMS limit goes through the local API's
own model (:class:`fuseguard.api.local.SettingsUpdate`, strict) and
:meth:`FlexManagement.update`, exactly as ``POST /v1/flex_management/setting`` does.

A departure can be set whole (``set/departure``, JSON) or in halves, as Home Assistant's UI sets
it: ``set/departure_time`` (``HH:MM``, the next such wall-clock time in the edge's local zone, or
ISO 8601 with offset) and ``set/departure_need`` (kWh). A half changes its half of the departure
in force; without one it waits here, in memory, as a *pending* half (shown on the same state
topics) until the other half arrives, for at most :data:`PENDING_TTL` (a pending time also not
past that time). An empty payload or ``null`` on either half, and ``null`` on
``set/departure``, clear the departure and the pending half.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol, runtime_checkable

import structlog
from pydantic import ValidationError

from fuseguard.api.local_models import SettingsUpdate
from fuseguard.api.mqtt.state import Topics
from fuseguard.control.departure_time import next_occurrence, parse_hhmm
from fuseguard.control.flex import FlexManagement
from fuseguard.control.plug_settings import (
    NEED_MAX_WH,
    PRIORITY_MAX,
    PRIORITY_MIN,
    Departure,
    check_departure_at,
    check_need_wh,
)
from fuseguard.model.clock import Clock
from fuseguard.model.status import ChargeMode

log = structlog.get_logger(__name__)

#: Longest command payload looked at; anything longer is refused unread.
MAX_PAYLOAD_BYTES = 1024
#: How long a half of a departure (time or need) waits for the other half.
PENDING_TTL = timedelta(hours=1)


@runtime_checkable
class PlugSettingsPort(Protocol):
    """Runtime mode/priority of plugs (optional: without it mode and priority are read-only)."""

    def set_mode(self, plug_id: str, mode: ChargeMode, *, source: str = ...) -> None:
        """Apply a charge mode."""

    def set_priority(self, plug_id: str, priority: int, *, source: str = ...) -> None:
        """Apply a priority (ValueError when out of range)."""

    def set_departure(
        self,
        plug_id: str,
        at: datetime | None,
        need_wh: float | None = ...,
        *,
        now: datetime,
        source: str = ...,
    ) -> None:
        """Announce (``at=None``: clear) the car's departure and energy need (ValueError)."""

    def departure_of(self, plug_id: str, now: datetime) -> Departure | None:
        """The departure in force (None when none or past)."""


@dataclass(frozen=True, slots=True)
class PendingHalf:
    """One half of a departure waiting for the other (``at`` xor ``need_wh`` is set)."""

    at: datetime | None
    need_wh: float | None
    since: datetime


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The answer to one command."""

    command: str
    ok: bool
    error: str | None = None
    message: str = ""
    value: Any = None

    def payload(self) -> bytes:
        """The JSON answer."""
        body: dict[str, Any] = {"command": self.command, "ok": self.ok}
        if self.ok:
            body["value"] = self.value
        else:
            body["error"] = self.error
            body["message"] = self.message
        return json.dumps(body, separators=(",", ":")).encode()


class CommandError(Exception):
    """A refused command: ``code`` goes into the answer's ``error``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(eq=False)
class CommandHandler:
    """Applies the commands of one edge."""

    topics: Topics
    flex: FlexManagement | None
    plug_keys: Mapping[str, str]  # plug id -> topic key
    plug_settings: PlugSettingsPort | None = None
    priority_range: tuple[int, int] = (PRIORITY_MIN, PRIORITY_MAX)
    clock: Clock | None = None  # for departures (their time of setting)
    #: the zone of ``HH:MM`` departure times; None: the process's local zone (``TZ``)
    tz: tzinfo | None = None
    _by_key: dict[str, str] = field(init=False)
    _pending: dict[str, PendingHalf] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._by_key = {key: pid for pid, key in self.plug_keys.items()}

    def relative(self, topic: str) -> str | None:
        """``topic`` below the base, or None when it is not one of ours."""
        prefix = self.topics.base + "/"
        return topic[len(prefix) :] if topic.startswith(prefix) else None

    def handle(self, topic: str, payload: bytes, retained: bool) -> CommandResult | None:
        """Apply one command; None when ``topic`` is not a command topic of this edge."""
        rel = self.relative(topic)
        if rel is None:
            return None
        parts = rel.split("/")
        is_site = len(parts) == 2 and parts[0] == "set"
        is_plug = len(parts) == 4 and parts[0] == "plug" and parts[2] == "set"
        if not (is_site or is_plug):
            return None
        try:
            if retained:
                raise CommandError("retained", "retained command messages are not applied")
            if len(payload) > MAX_PAYLOAD_BYTES:
                raise CommandError("too_large", f"payload over {MAX_PAYLOAD_BYTES} bytes")
            try:
                text = payload.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise CommandError("invalid_payload", "payload is not UTF-8") from None
            value = self._site(parts[1], text) if is_site else self._plug(parts[1], parts[3], text)
        except CommandError as err:
            log.warning(
                "mqtt_command_refused",
                device=topic,
                reason=str(err),
                error=err.code,
                payload=payload[:80].decode("utf-8", "replace"),
            )
            return CommandResult(rel, ok=False, error=err.code, message=str(err))
        log.info("mqtt_command_applied", device=topic, reason="mqtt command", value=value)
        return CommandResult(rel, ok=True, value=value)

    # --- site ----------------------------------------------------------------------------------

    def _site(self, name: str, text: str) -> Any:
        flex = self.flex
        if flex is None:
            raise CommandError("unavailable", "flex management is not running on this edge")
        if name == "keep_alive":
            flex.keep_alive(source="mqtt")
            return None
        if name != "ems_limit":
            raise CommandError("unknown_command", f"no command set/{name}")
        update = _settings_update(text)
        try:
            flex.update(
                activation=update.active_power_activation,
                current_limit_a=update.current_limit_a,
                fallback_current_limit_a=update.fallback_current_limit_a,
                source="mqtt",
            )
        except ValueError as err:
            raise CommandError("invalid_value", str(err)) from None
        s = flex.settings()
        return {
            "ActivePowerActivation": s.activation,
            "CurrentLimit": s.current_limit_a,
            "FallbackCurrentLimit": s.fallback_current_limit_a,
        }

    # --- plugs ---------------------------------------------------------------------------------

    def _plug(self, key: str, name: str, text: str) -> Any:
        pid = self._by_key.get(key)
        if pid is None:
            raise CommandError("unknown_plug", f"no plug {key!r} on this edge")
        if name not in ("mode", "priority", "departure", "departure_time", "departure_need"):
            raise CommandError("unknown_command", f"no command plug/{key}/set/{name}")
        port = self.plug_settings
        if name == "departure":
            return self._departure(pid, text)
        if name in ("departure_time", "departure_need"):
            return self._departure_half(pid, name, text)
        if name == "mode":
            try:
                mode = ChargeMode(text)
            except ValueError:
                allowed = ", ".join(m.value for m in ChargeMode)
                raise CommandError("invalid_payload", f"mode must be one of {allowed}") from None
            if port is None:
                raise CommandError("read_only", "plug mode is set in the site config")
            try:
                port.set_mode(pid, mode, source="mqtt")
            except OSError as err:
                raise CommandError("storage_error", f"not saved, not applied: {err}") from None
            return mode.value
        priority = _integer(text, "priority", *self.priority_range)
        if port is None:
            raise CommandError("read_only", "plug priority is set in the site config")
        try:
            port.set_priority(pid, priority, source="mqtt")
        except ValueError as err:
            raise CommandError("invalid_value", str(err)) from None
        except OSError as err:
            raise CommandError("storage_error", f"not saved, not applied: {err}") from None
        return priority

    def _departure(self, pid: str, text: str) -> Any:
        """``{"at": ISO 8601 with offset, "need_wh": N}`` announces, ``null`` clears."""
        port, clock = self.plug_settings, self.clock
        try:
            data = json.loads(text)
        except ValueError:
            raise CommandError("invalid_payload", "payload is not JSON") from None
        if data is not None and not (
            isinstance(data, dict)
            and set(data) == {"at", "need_wh"}
            and isinstance(data["at"], str)
        ):
            raise CommandError("invalid_payload", 'expected {"at": "<ISO time>", "need_wh": N}')
        if port is None or clock is None:
            raise CommandError("read_only", "departures are not available on this edge")
        try:
            if data is None:
                port.set_departure(pid, None, now=clock.now(), source="mqtt")
                self._pending.pop(pid, None)
                return None
            at = datetime.fromisoformat(data["at"])
            port.set_departure(pid, at, data["need_wh"], now=clock.now(), source="mqtt")
        except ValueError as err:
            raise CommandError("invalid_value", str(err)) from None
        except OSError as err:
            raise CommandError("storage_error", f"not saved, not applied: {err}") from None
        self._pending.pop(pid, None)
        return {"at": at.isoformat(), "need_wh": data["need_wh"]}

    # --- departure in halves ---------------------------------------------------------------------

    def departure_shown(self, pid: str, now: datetime) -> tuple[datetime | None, float | None]:
        """What the state topics show for ``pid``'s departure: the one in force, else the
        pending half (the other half None), else ``(None, None)``."""
        port = self.plug_settings
        dep = port.departure_of(pid, now) if port is not None else None
        if dep is not None:
            self._pending.pop(pid, None)  # superseded (set whole, e.g. from the web UI)
            return dep.at, dep.need_wh
        pending = self._pending_of(pid, now)
        if pending is None:
            return None, None
        return pending.at, pending.need_wh

    def _pending_of(self, pid: str, now: datetime) -> PendingHalf | None:
        """The pending half of ``pid`` unless it expired (then it is dropped)."""
        pending = self._pending.get(pid)
        if pending is None:
            return None
        if now - pending.since > PENDING_TTL or (pending.at is not None and pending.at <= now):
            del self._pending[pid]
            return None
        return pending

    def _departure_half(self, pid: str, name: str, text: str) -> Any:
        """``set/departure_time`` / ``set/departure_need``: one half, kept with the other half
        of the departure in force or of the pending one; empty or ``null`` clears."""
        port, clock = self.plug_settings, self.clock
        clear = text in ("", "null")
        if not clear:
            _check_half_syntax(name, text)
        if port is None or clock is None:
            raise CommandError("read_only", "departures are not available on this edge")
        now = clock.now()
        try:
            if clear:
                port.set_departure(pid, None, now=now, source="mqtt")
                self._pending.pop(pid, None)
                return {"at": None, "need_wh": None, "in_force": False}
            at: datetime | None = None
            need: float | None = None
            if name == "departure_time":
                at = check_departure_at(_departure_time(text, now, self.tz))
                if at <= now:
                    raise CommandError("invalid_value", f"departure {text} has passed")
            else:
                need = _need_wh(text)
            dep = port.departure_of(pid, now)
            other: tuple[datetime | None, float | None]
            if dep is not None:
                other = (dep.at, dep.need_wh)
            else:
                pending = self._pending_of(pid, now)
                other = (pending.at, pending.need_wh) if pending is not None else (None, None)
            at = at if at is not None else other[0]
            need = need if need is not None else other[1]
            if at is None or need is None:
                self._pending[pid] = PendingHalf(at, need, now)
                log.info("mqtt_departure_pending", charger=pid, reason=f"set/{name}")
                return _half_answer(at, need, in_force=False)
            port.set_departure(pid, at, need, now=now, source="mqtt")
        except ValueError as err:
            raise CommandError("invalid_value", str(err)) from None
        except OSError as err:
            raise CommandError("storage_error", f"not saved, not applied: {err}") from None
        self._pending.pop(pid, None)
        return _half_answer(at, need, in_force=True)


def _check_half_syntax(name: str, text: str) -> None:
    """Refuse a malformed time or need (``invalid_payload``) before anything else is looked at."""
    if name == "departure_need":
        if _JSON_NUMBER.fullmatch(text) is None:
            raise CommandError("invalid_payload", "energy need must be a number of kWh")
        return
    if parse_hhmm(text) is not None:
        return
    try:
        if not text.isascii():
            raise ValueError(text)
        datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            "invalid_payload", "departure time must be HH:MM or ISO 8601 with an offset"
        ) from None


def _need_wh(kwh: str) -> float:
    """A need in kWh (syntax checked) as Wh, through :func:`check_need_wh`; the refusal in kWh."""
    try:
        return check_need_wh(float(kwh) * 1000.0)
    except ValueError:
        limit = NEED_MAX_WH / 1000.0
        msg = f"energy need must be a finite number of kWh within 0..{limit:g}, got {kwh}"
        raise CommandError("invalid_value", msg) from None


def _departure_time(text: str, now: datetime, tz: tzinfo | None) -> datetime:
    """``HH:MM``: its next occurrence after ``now`` in ``tz`` (None: the process's local zone),
    today or tomorrow (:func:`~fuseguard.control.departure_time.next_occurrence`); else the
    ISO 8601 date and time as given (checked by the caller)."""
    wall = parse_hhmm(text)
    if wall is None:
        return datetime.fromisoformat(text)
    return next_occurrence(wall, now, tz)


def _half_answer(at: datetime | None, need_wh: float | None, *, in_force: bool) -> Any:
    return {
        "at": at.isoformat() if at is not None else None,
        "need_wh": need_wh,
        "in_force": in_force,
    }


def _settings_update(text: str) -> SettingsUpdate:
    """A bare number is ``{"CurrentLimit": x}``; a JSON object is the local API's body."""
    try:
        data = json.loads(text)
    except ValueError:
        raise CommandError("invalid_payload", "payload is not a number or a JSON object") from None
    if isinstance(data, bool) or not isinstance(data, int | float | dict):
        raise CommandError("invalid_payload", "payload is not a number or a JSON object")
    if not isinstance(data, dict):
        data = {"CurrentLimit": data}
    try:
        return SettingsUpdate.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "body"
        raise CommandError("invalid_payload", f"{where}: {first['msg']}") from None


#: a JSON number in ASCII: ``float()`` alone also took ``1_0`` (10), ``٥`` and ``５`` (5)
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?", re.ASCII)


def _integer(text: str, what: str, lo: int, hi: int) -> int:
    if _JSON_NUMBER.fullmatch(text) is None:
        raise CommandError("invalid_payload", f"{what} must be an integer")
    number = float(text)
    if not math.isfinite(number) or number != int(number):
        raise CommandError("invalid_payload", f"{what} must be an integer")
    if not lo <= number <= hi:
        raise CommandError("invalid_value", f"{what} must be within {lo}..{hi}")
    return int(number)


__all__ = [
    "MAX_PAYLOAD_BYTES",
    "PENDING_TTL",
    "CommandError",
    "CommandHandler",
    "CommandResult",
    "PendingHalf",
    "PlugSettingsPort",
]
