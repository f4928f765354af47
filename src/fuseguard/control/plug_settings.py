"""Runtime charge mode, priority and departure per plug: overrides of the configured values,
persisted.

The site config sets every plug's ``mode`` and ``priority``; an integration (the MQTT interface,
Home Assistant) can override them at run time. The allocator bridge asks
:meth:`PlugSettings.mode_of` / :meth:`PlugSettings.priority_of` every cycle, so a change takes
effect at the next cycle (listeners, e.g. ``Controller.wake``, make that immediate).

Overrides are validated here, the one place (mode in :class:`ChargeMode`, priority an integer
in ``-100..100`` like the config), and stored in a small JSON file in the data dir, replaced
atomically. An override equal to the configured value is dropped, so the file only ever holds
real differences; a corrupt or foreign file is logged and ignored (the config values apply).

A **departure** (when the car leaves, timezone-aware, and the energy it needs this session, Wh)
is a per-session setting: the allocator serves a car that must charge at its cap to finish in
time first (least laxity first, ``allocation/urgency.py``). It is dropped when its time has
passed, when it is cleared, or when the session it was set for ends
(:meth:`PlugSettings.end_session`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from fuseguard.control.types import ChargerSpec
from fuseguard.model.status import ChargeMode

log = structlog.get_logger(__name__)

#: Key of the edge's :class:`PlugSettings` in ``EdgeRuntime.shared``.
RUNTIME_KEY = "plug_settings"
PRIORITY_MIN = -100
PRIORITY_MAX = 100
#: the largest energy need a departure may announce (Wh): above any car battery
NEED_MAX_WH = 250_000.0
_VERSION = 1


@dataclass(frozen=True, slots=True)
class PlugSetting:
    """Mode and priority of one plug in force."""

    mode: ChargeMode
    priority: int


@dataclass(frozen=True, slots=True)
class Departure:
    """When the car on a plug leaves and the energy it needs this session (set at ``set_at``)."""

    at: datetime
    need_wh: float
    set_at: datetime


def check_departure(at: object, need_wh: object) -> tuple[datetime, float]:
    """A timezone-aware datetime and a need in ``0 < need_wh <= NEED_MAX_WH``, else ValueError."""
    return check_departure_at(at), check_need_wh(need_wh)


def check_departure_at(at: object) -> datetime:
    """The time half of :func:`check_departure`: a timezone-aware datetime, else ValueError."""
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        msg = f"departure must be a timezone-aware date and time, got {at!r}"
        raise ValueError(msg)
    return at


def check_need_wh(need_wh: object) -> float:
    """The energy half of :func:`check_departure`: a finite number of Wh in
    ``0 < need_wh <= NEED_MAX_WH`` (booleans refused), else ValueError."""
    if isinstance(need_wh, bool) or not isinstance(need_wh, int | float):
        msg = f"energy need must be a number of Wh, got {need_wh!r}"
        raise ValueError(msg)
    need = float(need_wh)
    if not math.isfinite(need) or not 0 < need <= NEED_MAX_WH:
        msg = f"energy need must be within 0..{NEED_MAX_WH:.0f} Wh, got {need_wh!r}"
        raise ValueError(msg)
    return need


def check_priority(value: object) -> int:
    """An integer within ``PRIORITY_MIN..PRIORITY_MAX`` (booleans refused), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"priority must be an integer, got {value!r}"
        raise ValueError(msg)
    if not PRIORITY_MIN <= value <= PRIORITY_MAX:
        msg = f"priority must be within {PRIORITY_MIN}..{PRIORITY_MAX}, got {value}"
        raise ValueError(msg)
    return value


class PlugSettings:
    """Configured mode/priority per plug with validated, persisted runtime overrides."""

    def __init__(self, specs: Iterable[ChargerSpec], path: Path | None = None) -> None:
        self._configured = {s.id: PlugSetting(s.mode, s.priority) for s in specs}
        self._path = path
        self._modes: dict[str, ChargeMode] = {}
        self._priorities: dict[str, int] = {}
        self._departures: dict[str, Departure] = {}
        self._listeners: list[Callable[[], None]] = []
        if path is not None:
            self._load(path)

    # --- reading ---------------------------------------------------------------------------

    def mode_of(self, plug_id: str, default: ChargeMode) -> ChargeMode:
        """The mode in force (``default``: the configured one, when there is no override)."""
        return self._modes.get(plug_id, default)

    def priority_of(self, plug_id: str, default: int) -> int:
        """The priority in force."""
        return self._priorities.get(plug_id, default)

    def departure_of(self, plug_id: str, now: datetime) -> Departure | None:
        """The departure announced for the plug's car, None when none or already past."""
        dep = self._departures.get(plug_id)
        return dep if dep is not None and dep.at > now else None

    def all(self) -> Mapping[str, PlugSetting]:
        """Mode and priority in force for every configured plug."""
        return {
            pid: PlugSetting(self._modes.get(pid, c.mode), self._priorities.get(pid, c.priority))
            for pid, c in self._configured.items()
        }

    # --- writing ---------------------------------------------------------------------------

    def set_mode(self, plug_id: str, mode: ChargeMode, *, source: str = "api") -> None:
        """Override the mode of ``plug_id`` (KeyError for an unknown plug; OSError when it
        cannot be persisted, and then nothing changed)."""
        configured = self._configured[plug_id]
        mode = ChargeMode(mode)
        modes = dict(self._modes)
        if mode == configured.mode:
            modes.pop(plug_id, None)
        else:
            modes[plug_id] = mode
        self._commit(modes, self._priorities, plug_id, f"mode {mode.value} from {source}")

    def set_priority(self, plug_id: str, priority: int, *, source: str = "api") -> None:
        """Override the priority of ``plug_id`` (KeyError / ValueError when invalid; OSError
        when it cannot be persisted, and then nothing changed)."""
        configured = self._configured[plug_id]
        priority = check_priority(priority)
        priorities = dict(self._priorities)
        if priority == configured.priority:
            priorities.pop(plug_id, None)
        else:
            priorities[plug_id] = priority
        self._commit(self._modes, priorities, plug_id, f"priority {priority} from {source}")

    def set_departure(
        self,
        plug_id: str,
        at: datetime | None,
        need_wh: float | None = None,
        *,
        now: datetime,
        source: str = "api",
    ) -> None:
        """Announce (or with ``at=None`` clear) when the car on ``plug_id`` leaves and how much
        energy it needs (KeyError / ValueError when invalid; OSError when it cannot be
        persisted, and then nothing changed)."""
        if plug_id not in self._configured:
            raise KeyError(plug_id)
        departures = dict(self._departures)
        if at is None:
            departures.pop(plug_id, None)
            reason = f"departure cleared from {source}"
        else:
            at, need = check_departure(at, need_wh)
            departures[plug_id] = Departure(at, need, now)
            reason = f"departure {at.isoformat()} needing {need:.0f} Wh from {source}"
        self._commit(self._modes, self._priorities, plug_id, reason, departures)

    def end_session(self, plug_id: str, ended_at: datetime) -> None:
        """The car on ``plug_id`` left (seen at ``ended_at``): drop its departure (one set
        after that is for the next car). A failure to persist is logged, never raised."""
        dep = self._departures.get(plug_id)
        if dep is None or dep.set_at > ended_at:
            return
        departures = dict(self._departures)
        departures.pop(plug_id)
        try:
            self._commit(self._modes, self._priorities, plug_id, "session ended", departures)
        except OSError as exc:
            log.warning("plug_settings_unsaved", charger=plug_id, reason=str(exc))

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every change."""
        self._listeners.append(callback)

    # --- internals -------------------------------------------------------------------------

    def _commit(
        self,
        modes: dict[str, ChargeMode],
        priorities: dict[str, int],
        plug_id: str,
        reason: str,
        departures: dict[str, Departure] | None = None,
    ) -> None:
        """Persist first, then apply and tell the listeners."""
        deps = self._departures if departures is None else departures
        if self._path is not None:
            self._save(self._path, modes, priorities, deps)
        self._modes, self._priorities, self._departures = modes, priorities, deps
        log.info("plug_setting_changed", charger=plug_id, reason=reason)
        for callback in list(self._listeners):
            try:
                callback()
            except Exception as exc:  # a broken listener must not break the command
                log.exception("plug_settings_listener_failed", charger=plug_id, reason=str(exc))

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("plug_settings_unreadable", path=str(path), reason=str(exc))
            return
        plugs = data.get("plugs") if isinstance(data, dict) else None
        if not isinstance(plugs, dict):
            log.warning("plug_settings_corrupt", path=str(path), reason="no 'plugs' object")
            return
        for pid, entry in plugs.items():
            if pid not in self._configured or not isinstance(entry, dict):
                log.info("plug_setting_dropped", charger=pid, reason="plug not configured")
                continue
            if "mode" in entry:
                try:
                    self._modes[pid] = ChargeMode(entry["mode"])
                except ValueError as exc:
                    log.warning("plug_setting_dropped", charger=pid, reason=str(exc))
            if "priority" in entry:
                try:
                    self._priorities[pid] = check_priority(entry["priority"])
                except ValueError as exc:
                    log.warning("plug_setting_dropped", charger=pid, reason=str(exc))
            if "departure" in entry:
                self._load_departure(pid, entry["departure"])

    def _load_departure(self, pid: str, entry: object) -> None:
        try:
            if not isinstance(entry, dict):
                msg = "departure is not an object"
                raise ValueError(msg)
            at, need = check_departure(
                datetime.fromisoformat(str(entry.get("at"))), entry.get("need_wh")
            )
            set_at = datetime.fromisoformat(str(entry.get("set_at")))
            if set_at.tzinfo is None:
                msg = "departure set_at has no time zone"
                raise ValueError(msg)
            self._departures[pid] = Departure(at, need, set_at)
        except (TypeError, ValueError) as exc:
            log.warning("plug_setting_dropped", charger=pid, reason=str(exc))

    @staticmethod
    def _save(
        path: Path,
        modes: dict[str, ChargeMode],
        priorities: dict[str, int],
        departures: dict[str, Departure],
    ) -> None:
        plugs: dict[str, dict[str, object]] = {}
        for pid, mode in modes.items():
            plugs.setdefault(pid, {})["mode"] = mode.value
        for pid, priority in priorities.items():
            plugs.setdefault(pid, {})["priority"] = priority
        for pid, dep in departures.items():
            plugs.setdefault(pid, {})["departure"] = {
                "at": dep.at.isoformat(),
                "need_wh": dep.need_wh,
                "set_at": dep.set_at.isoformat(),
            }
        payload = json.dumps({"version": _VERSION, "plugs": plugs}, indent=2, sort_keys=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(payload + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


__all__ = [
    "NEED_MAX_WH",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "RUNTIME_KEY",
    "Departure",
    "PlugSetting",
    "PlugSettings",
    "check_departure",
    "check_departure_at",
    "check_need_wh",
    "check_priority",
]
