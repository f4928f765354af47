"""The settings page and its writes, each through the one code path of its API.

* EMS current limit: the local API's body model (:class:`SettingsUpdate`, strict, 0..10 kA,
  finite) and then :meth:`FlexManagement.update`, exactly as ``POST /v1/flex_management/setting``.
* Direct EVSE target: the EVSE API's body model (:class:`CurrentSettingsIn`), its
  ``max_duration_s`` bound and :func:`set_current_settings` (the EVSE's current range), which
  sets the target through the EVSE backend into :class:`EvseTargets`.
* Plug mode and priority: :class:`PlugSettings` (validated and persisted there), as the MQTT
  commands do.
* A plug's departure: "Leaves at (HH:MM)" (its next occurrence in the edge's local zone, the
  same rule as the MQTT ``set/departure_time``: :mod:`fuseguard.control.departure_time`) or
  "Leaves in (h)", exactly one, and "Energy need (kWh)"; then :meth:`PlugSettings.set_departure`.

Every accepted change is written to the event log before the page answers. A refused value
re-renders the page with the reason (422), nothing changed.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo
from typing import Any

import structlog
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fuseguard.api.evse import set_current_settings
from fuseguard.api.evse_errors import ApiError
from fuseguard.api.evse_models import CurrentSettingsIn
from fuseguard.api.local_models import SettingsUpdate
from fuseguard.api.web.auth import Session
from fuseguard.api.web.core import (
    WebDeps,
    WriteRefusedError,
    current_session,
    deps_of,
    read_form,
    render,
    to_login,
    writer_session,
)
from fuseguard.api.web.events import EventKind
from fuseguard.api.web.view import MODE_WORDS, departure_view
from fuseguard.control.departure_time import HHMM, departure_words, next_hhmm
from fuseguard.control.plug_settings import NEED_MAX_WH, check_priority
from fuseguard.model.status import ChargeMode
from fuseguard.store.web import Role

log = structlog.get_logger(__name__)


class RefusedError(ValueError):
    """A value the API's validation refused (the message is shown on the page)."""


def _validation_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ())) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def _number(form: dict[str, str], name: str, label: str) -> float | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError as exc:
        msg = f"{label} must be a number of amperes, got {text!r}"
        raise RefusedError(msg) from exc


def _integer(form: dict[str, str], name: str, label: str) -> int:
    text = form.get(name, "").strip()
    try:
        return int(text)
    except ValueError as exc:
        msg = f"{label} must be a whole number, got {text!r}"
        raise RefusedError(msg) from exc


def settings_context(deps: WebDeps) -> dict[str, Any]:
    """What the settings page shows."""
    flex = deps.flex.settings()
    plugs = deps.status().plugs
    ps, now = deps.plug_settings, deps.clock.now()
    settings = ps.all() if ps is not None else {}
    return {
        "flex": flex,
        "in_fallback": deps.flex.in_fallback,
        "watchdog_s": deps.flex.seconds_until_expiry(),
        "fuse_a": deps.flex.fuse_a,
        "evses": list(deps.evses.values()),
        "targets": deps.targets.all(),
        "max_duration_s": deps.max_duration_s,
        # (plug, its mode and priority, the departure in force: departure_view)
        "plugs": [
            (
                p,
                settings.get(p.id),
                departure_view(ps.departure_of(p.id, now), now, deps.tz)
                if ps is not None
                else None,
            )
            for p in plugs
        ],
        "hhmm_pattern": HHMM.pattern,
        "modes": list(MODE_WORDS.items()),
        "plug_settings_on": deps.plug_settings is not None,
    }


def _page(request: Request, *, message: str = "", error: str = "", code: int = 200) -> Response:
    ctx = settings_context(deps_of(request))
    return render(request, "settings.html", {**ctx, "message": message, "error": error}, code)


async def settings_page(request: Request) -> Response:
    """``GET /settings`` (viewers see the values, the forms are for admins)."""
    if current_session(request) is None:
        return to_login(request)
    return _page(request, message=request.query_params.get("done", "")[:40] and "Saved.")


async def _apply_limit(deps: WebDeps, session: Session, form: dict[str, str]) -> str:
    body: dict[str, Any] = {"ActivePowerActivation": form.get("activation") == "on"}
    for field, alias, label in (
        ("current_limit_a", "CurrentLimit", "Current limit"),
        ("fallback_current_limit_a", "FallbackCurrentLimit", "Fallback limit"),
    ):
        value = _number(form, field, label)
        if value is not None:
            body[alias] = value
    try:
        update = SettingsUpdate.model_validate(body)
    except ValidationError as exc:
        raise RefusedError(_validation_text(exc)) from exc
    deps.flex.update(
        activation=update.active_power_activation,
        current_limit_a=update.current_limit_a,
        fallback_current_limit_a=update.fallback_current_limit_a,
        source=f"web {session.user}",
    )
    s = deps.flex.settings()
    text = (
        f"EMS limit {'on' if s.activation else 'off'}: CurrentLimit {s.current_limit_a:g} A, "
        f"FallbackCurrentLimit {s.fallback_current_limit_a:g} A"
    )
    await deps.events.record(EventKind.LIMIT, f"web {session.user}", text)
    return text


async def _apply_target(deps: WebDeps, session: Session, form: dict[str, str]) -> str:
    info = deps.evses.get(form.get("evse", ""))
    if info is None:
        msg = "unknown EVSE"
        raise RefusedError(msg)
    if form.get("clear") == "1":
        await deps.evse_backend.clear_target(deps.edge_id, info.evse_uuid)
        text = f"EVSE {info.evse_uuid}: target cleared"
    else:
        current = _integer(form, "current_a", "Target current")
        duration = _integer(form, "duration_s", "Duration")
        try:
            body = CurrentSettingsIn.model_validate({"current": current, "duration": duration})
        except ValidationError as exc:
            raise RefusedError(_validation_text(exc)) from exc
        if body.duration > deps.max_duration_s:
            msg = f"duration: at most {deps.max_duration_s} s"
            raise RefusedError(msg)
        try:
            posted = await set_current_settings(body, deps.edge_id, info, deps.evse_backend)
        except ApiError as exc:
            raise RefusedError(exc.message) from exc
        text = f"EVSE {info.evse_uuid}: target {posted.current} A for {posted.duration} s"
    await deps.events.record(EventKind.TARGET, f"web {session.user}", text)
    return text


async def _apply_plug(deps: WebDeps, session: Session, form: dict[str, str]) -> str:
    if deps.plug_settings is None:
        msg = "runtime plug settings are not available on this edge"
        raise RefusedError(msg)
    plug = form.get("plug", "")
    try:
        mode = ChargeMode(form.get("mode", ""))
        # both checked before either is applied: a valid mode with a priority out of range
        # used to change the mode and answer 422
        priority = check_priority(_integer(form, "priority", "Priority"))
        source = f"web {session.user}"
        deps.plug_settings.set_mode(plug, mode, source=source)
        deps.plug_settings.set_priority(plug, priority, source=source)
    except KeyError as exc:
        msg = f"unknown plug {plug!r}"
        raise RefusedError(msg) from exc
    except OSError as exc:
        msg = f"could not save the setting: {exc}"
        raise RefusedError(msg) from exc
    text = f"plug {plug}: mode {mode.value}, priority {priority}"
    await deps.events.record(EventKind.PLUG_SETTING, f"web {session.user}", text)
    return text


#: the longest text a departure field may hold; longer is refused unread
DEPARTURE_FIELD_MAX = 32
#: the furthest ahead "Leaves in (h)" may be
DEPARTURE_MAX_HOURS = 168.0
#: a decimal number as typed into the form (ASCII digits; a decimal comma is taken as a point)
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+", re.ASCII)
_AT_LABEL, _HOURS_LABEL, _NEED_LABEL = "Leaves at (HH:MM)", "Leaves in (h)", "Energy need (kWh)"


def _departure_field(form: dict[str, str], name: str, label: str) -> str:
    text = form.get(name, "").strip()
    if len(text) > DEPARTURE_FIELD_MAX:
        msg = f"{label} must be at most {DEPARTURE_FIELD_MAX} characters"
        raise RefusedError(msg)
    return text


def _decimal(text: str, label: str, limit: float) -> float:
    """A finite number in ``0 < x <= limit`` typed into ``label`` (NaN, inf, 1e3, 1_0 refused)."""
    number = text.replace(",", ".", 1)
    if _DECIMAL.fullmatch(number) is None or not 0 < float(number) <= limit:
        msg = f"{label} must be a number within 0..{limit:g}, got {text!r}"
        raise RefusedError(msg)
    return float(number)


def _departure_at(form: dict[str, str], now: datetime, tz: tzinfo | None) -> datetime:
    """When the car leaves: exactly one of "Leaves at (HH:MM)" (its next occurrence in ``tz``)
    and "Leaves in (h)"."""
    at_text = _departure_field(form, "at", _AT_LABEL)
    hours_text = _departure_field(form, "hours", _HOURS_LABEL)
    if at_text and hours_text:
        msg = f"give either {_AT_LABEL} or {_HOURS_LABEL}, not both"
        raise RefusedError(msg)
    if not at_text and not hours_text:
        msg = f"give {_AT_LABEL} or {_HOURS_LABEL}"
        raise RefusedError(msg)
    if at_text:
        try:
            return next_hhmm(at_text, now, tz)
        except ValueError as exc:
            msg = f"{_AT_LABEL} must be a time of day 00:00..23:59, got {at_text!r}"
            raise RefusedError(msg) from exc
    return now + timedelta(hours=_decimal(hours_text, _HOURS_LABEL, DEPARTURE_MAX_HOURS))


async def _apply_departure(deps: WebDeps, session: Session, form: dict[str, str]) -> str:
    """A car's departure (a time of day, or hours from now) and energy need (kWh), or clear it.
    Every field is checked before the one write (nothing half-applied)."""
    if deps.plug_settings is None:
        msg = "runtime plug settings are not available on this edge"
        raise RefusedError(msg)
    plug = form.get("plug", "")
    now = deps.clock.now()
    source = f"web {session.user}"
    try:
        if form.get("clear") == "1":
            deps.plug_settings.set_departure(plug, None, now=now, source=source)
            text = f"plug {plug}: departure cleared"
        else:
            at = _departure_at(form, now, deps.tz)
            need_text = _departure_field(form, "need_kwh", _NEED_LABEL)
            need_kwh = _decimal(need_text, _NEED_LABEL, NEED_MAX_WH / 1000.0)
            deps.plug_settings.set_departure(plug, at, need_kwh * 1000.0, now=now, source=source)
            when = departure_words(at, now, deps.tz)
            text = f"plug {plug}: leaves {when}, needs {need_kwh:g} kWh"
    except KeyError as exc:
        msg = f"unknown plug {plug[:64]!r}"
        raise RefusedError(msg) from exc
    except RefusedError:
        raise
    except ValueError as exc:
        raise RefusedError(str(exc)) from exc
    except OSError as exc:
        msg = f"could not save the setting: {exc}"
        raise RefusedError(msg) from exc
    await deps.events.record(EventKind.PLUG_SETTING, source, text)
    return text


_ACTIONS = {
    "limit": _apply_limit,
    "target": _apply_target,
    "plug": _apply_plug,
    "departure": _apply_departure,
}


async def settings_write(request: Request) -> Response:
    """``POST /settings/{what}``: limit, target, plug or departure."""
    action = _ACTIONS.get(request.path_params.get("what", ""))
    if action is None:
        return Response("not found\n", 404)
    try:
        form = await read_form(request)
        session = writer_session(request, form)
    except WriteRefusedError as refused:
        return refused.response
    deps = deps_of(request)
    if await deps.users.role_of(session.user) is not Role.ADMIN:  # removed or demoted since login
        deps.sessions.drop_user(session.user)
        return Response("no longer an admin: log in again\n", 403)
    try:
        text = await action(deps, session, form)
    except (RefusedError, ValueError) as exc:
        log.info("web_setting_refused", device="web", user=session.user, reason=str(exc))
        return _page(request, error=str(exc), code=422)
    log.info("web_setting_changed", device="web", user=session.user, reason=text)
    if request.headers.get("hx-request"):
        return _page(request, message=text)
    return RedirectResponse("/settings?done=1", status_code=303)


__all__ = ["settings_context", "settings_page", "settings_write"]
