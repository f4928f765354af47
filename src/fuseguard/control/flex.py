"""Flex management: the external (EMS) current limit of this edge, with its keep-alive watchdog.

This is the state behind the CLEMAP local API (``/v1/flex_management/setting``, ``/v1/keep-alive``)
and its Modbus TCP twin (registers 19050-19056); both front ends share one :class:`FlexManagement`
(devices.md 1.7 and 7.1).

Semantics:

* ``activation`` false: the external limit is ignored, no watchdog runs; the main-circuit limit is
  the fuse.
* ``activation`` true: the limit is ``min(fuse, CurrentLimit)``. Every write and every keep-alive
  resets the watchdog (default 120 s). When it expires the limit becomes
  ``min(fuse, FallbackCurrentLimit)`` and ``CurrentLimit`` reads back as the fallback value (the
  CLEMAP Modbus page: "CurrentLimit falls into FallbackCurrentLimit"). With
  ``overwrite_limit_on_expiry`` (default, like the device) the stored ``CurrentLimit`` is
  overwritten, so a bare keep-alive afterwards keeps the fallback value until the EMS writes a new
  ``CurrentLimit``; with it off, the next contact restores the previous limit.
* Settings persist through a :class:`FlexStore` on every change (including the overwrite on
  expiry), saved *before* the new state takes effect: a write that cannot be saved changes
  nothing and raises ``OSError`` (the APIs answer 503 / Modbus exception 04). After a restart the
  watchdog starts afresh: the EMS gets one full timeout to reappear.
* ``FallbackCurrentLimit`` that nobody set (neither the EMS nor ``default_fallback_a`` in the
  config) is never above the last ``CurrentLimit`` the EMS wrote: an EMS that set 20 A does not see
  the fuse's 35 A when its keep-alive expires.
* A corrupt settings file does not silently drop an active EMS limit: :class:`JsonFileFlexStore`
  keeps a last good copy, restores it and reports the problem; the edge then starts in fallback
  (the EMS's next contact ends it) and logs an error saying so.

Time comes from the injected :class:`~fuseguard.model.clock.Clock`: the expiry is checked lazily
against ``clock.monotonic()`` on every read and, for notification, by a ``clock.call_later`` timer.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import structlog

from fuseguard.model.clock import Clock, TimerHandle

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT_S = 120.0
#: Largest current limit accepted from an EMS; anything above is a typo or garbage, not a limit.
MAX_CURRENT_LIMIT_A = 10_000.0
_STORE_VERSION = 1


@dataclass(frozen=True, slots=True)
class FlexSettings:
    """The EMS-writable settings (CLEMAP ``ActivePowerActivation``, ``CurrentLimit``, ...)."""

    activation: bool = False
    current_limit_a: float = 16.0
    fallback_current_limit_a: float = 6.0
    #: set by an EMS write or the config; otherwise the fallback follows the EMS's CurrentLimit
    fallback_set: bool = field(default=False, compare=False)


class FlexStore(Protocol):
    """Persistence of :class:`FlexSettings`."""

    def load(self) -> FlexSettings | None:
        """The last saved settings, or None when nothing (valid) was saved."""

    def save(self, settings: FlexSettings) -> None:
        """Persist ``settings`` durably before returning."""


class MemoryFlexStore:
    """A store that keeps settings in memory (tests, ``demo``)."""

    def __init__(self, settings: FlexSettings | None = None) -> None:
        self.saved: FlexSettings | None = settings
        self.save_count = 0

    def load(self) -> FlexSettings | None:
        """The last saved settings."""
        return self.saved

    def save(self, settings: FlexSettings) -> None:
        """Remember ``settings``."""
        self.saved = settings
        self.save_count += 1


class JsonFileFlexStore:
    """Settings in a small JSON file, replaced atomically (tmp + fsync + ``os.replace``).

    A reader sees either the old or the new file, never a torn one, even after ``kill -9`` or a
    power cut during the write. Every save also replaces a last good copy (``<name>.last-good``).
    When the file is unreadable or corrupt, :meth:`load` moves it aside (``<name>.corrupt``),
    returns the last good copy and sets :attr:`load_problem`. Stray temp files of a crashed save
    are removed on load.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.backup = self.path.with_name(self.path.name + ".last-good")
        #: Why the last :meth:`load` could not use the file (None: it could, or there was none).
        self.load_problem: str | None = None

    def load(self) -> FlexSettings | None:
        """The settings; the last good copy when the file is corrupt; None when there are none."""
        self.load_problem = None
        self._remove_stray_temp_files()
        try:
            return self._read(self.path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problem = f"{self.path} is unreadable or corrupt ({exc})"
        with contextlib.suppress(OSError):
            os.replace(self.path, self.path.with_name(self.path.name + ".corrupt"))
        try:
            settings = self._read(self.backup)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.load_problem = f"{problem}; no usable last good copy ({exc})"
            log.error("flex_store_corrupt", path=str(self.path), reason=self.load_problem)
            return None
        self.load_problem = f"{problem}; restored the last good copy {self.backup.name}"
        log.error("flex_store_corrupt", path=str(self.path), reason=self.load_problem)
        return settings

    def save(self, settings: FlexSettings) -> None:
        """Write atomically and durably (the file, then the last good copy)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"version": _STORE_VERSION, **asdict(settings)}, indent=2) + "\n"
        for target in (self.path, self.backup):
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        _fsync_dir(self.path.parent)

    @staticmethod
    def _read(path: Path) -> FlexSettings:
        data = json.loads(path.read_text(encoding="utf-8"))
        return FlexSettings(
            activation=_as_bool(data["activation"]),
            current_limit_a=_as_current(data["current_limit_a"]),
            fallback_current_limit_a=_as_current(data["fallback_current_limit_a"]),
            fallback_set=_as_bool(data.get("fallback_set", False)),
        )

    def _remove_stray_temp_files(self) -> None:
        for name in (self.path.name, self.backup.name):
            for stray in self.path.parent.glob(f".{name}.*.tmp"):
                with contextlib.suppress(OSError):
                    stray.unlink()
                    log.info("flex_store_temp_removed", path=str(stray), reason="crashed save")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _as_bool(value: object) -> bool:
    if not isinstance(value, bool):
        msg = f"expected a boolean, got {value!r}"
        raise TypeError(msg)
    return value


def _as_current(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"expected a number, got {value!r}"
        raise TypeError(msg)
    return check_current_limit(float(value), "current")


def check_current_limit(value_a: float, field: str) -> float:
    """Return ``value_a`` if it is a sane current limit (finite, 0..10 kA), else ValueError."""
    if not math.isfinite(value_a):
        msg = f"{field} must be a finite number of amperes, got {value_a!r}"
        raise ValueError(msg)
    if value_a < 0:
        msg = f"{field} must not be negative, got {value_a!r} A"
        raise ValueError(msg)
    if value_a > MAX_CURRENT_LIMIT_A:
        msg = f"{field} of {value_a!r} A is above the sane maximum of {MAX_CURRENT_LIMIT_A:g} A"
        raise ValueError(msg)
    return value_a + 0.0  # -0.0 is read back as 0.0


class FlexManagement:
    """The EMS limit of the main circuit, its watchdog and persistence (see module docstring)."""

    def __init__(
        self,
        clock: Clock,
        *,
        fuse_a: float,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        default_fallback_a: float | None = None,
        store: FlexStore | None = None,
        overwrite_limit_on_expiry: bool = True,
        name: str = "local-api",
    ) -> None:
        if not math.isfinite(fuse_a) or fuse_a <= 0:
            msg = f"fuse_a must be a positive number, got {fuse_a!r}"
            raise ValueError(msg)
        if not math.isfinite(timeout_s) or timeout_s <= 0:
            msg = f"timeout_s must be positive, got {timeout_s!r}"
            raise ValueError(msg)
        self._clock = clock
        self.fuse_a = float(fuse_a)
        self.timeout_s = float(timeout_s)
        self._store = store
        self._overwrite = overwrite_limit_on_expiry
        self._name = name
        self._listeners: list[Callable[[], None]] = []
        self._timer: TimerHandle | None = None
        self._deadline: float | None = None
        self._expired = False
        fallback = self.fuse_a if default_fallback_a is None else default_fallback_a
        self._default_fallback_a = check_current_limit(float(fallback), "default_fallback_a")
        default = FlexSettings(
            activation=False,
            current_limit_a=self.fuse_a,
            fallback_current_limit_a=self._default_fallback_a,
            fallback_set=default_fallback_a is not None,
        )
        loaded = store.load() if store is not None else None
        problem: str | None = getattr(store, "load_problem", None)
        self._settings = self._follow_limit(loaded) if loaded is not None else default
        log.info(
            "flex_loaded",
            device=self._name,
            reason="restored from store" if loaded is not None else "defaults",
            activation=self._settings.activation,
            current_limit_a=self._settings.current_limit_a,
            fallback_current_limit_a=self._settings.fallback_current_limit_a,
        )
        if problem is not None and self._settings.activation:
            self._expired = True  # the EMS's next write or keep-alive ends it
            log.error(
                "flex_started_in_fallback",
                device=self._name,
                reason=problem,
                limit_a=min(self.fuse_a, self._settings.fallback_current_limit_a),
            )
        elif self._settings.activation:
            self._arm()

    # --- reading ---------------------------------------------------------------------------

    def settings(self) -> FlexSettings:
        """Settings as reported: after expiry ``current_limit_a`` reads as the fallback."""
        self._poll()
        if self._in_fallback():
            return replace(self._settings, current_limit_a=self._settings.fallback_current_limit_a)
        return self._settings

    @property
    def in_fallback(self) -> bool:
        """True while activation is on and the watchdog has expired."""
        self._poll()
        return self._in_fallback()

    def limit_a(self, within_s: float = 0.0) -> float:
        """The main-circuit limit in force (A per phase); with ``within_s`` > 0 the lower of
        that and the fallback when the watchdog expires within ``within_s`` (a slow charger's
        decrease is decided that long ahead: docs/safety.md, "A write under way")."""
        self._poll()
        s = self._settings
        if not s.activation:
            return self.fuse_a
        if self._in_fallback():
            return min(self.fuse_a, s.fallback_current_limit_a)
        limit = min(self.fuse_a, s.current_limit_a)
        left_s = self.seconds_until_expiry() if within_s > 0.0 else None
        if left_s is not None and left_s <= within_s:
            return min(limit, s.fallback_current_limit_a)
        return limit

    def seconds_until_expiry(self) -> float | None:
        """Watchdog time left; None when activation is off, 0.0 once expired."""
        self._poll()
        if not self._settings.activation or self._deadline is None:
            return None
        if self._expired:
            return 0.0
        return max(0.0, self._deadline - self._clock.monotonic())

    # --- writing ---------------------------------------------------------------------------

    def update(
        self,
        *,
        activation: bool | None = None,
        current_limit_a: float | None = None,
        fallback_current_limit_a: float | None = None,
        source: str = "api",
    ) -> None:
        """Partial update: validate all fields first, then persist and reset the watchdog."""
        new = self._settings
        if self._in_fallback_now() and self._overwrite:
            new = replace(new, current_limit_a=new.fallback_current_limit_a)
        if activation is not None:
            new = replace(new, activation=bool(activation))
        if current_limit_a is not None:
            new = replace(
                new, current_limit_a=check_current_limit(float(current_limit_a), "CurrentLimit")
            )
        if fallback_current_limit_a is not None:
            new = replace(
                new,
                fallback_current_limit_a=check_current_limit(
                    float(fallback_current_limit_a), "FallbackCurrentLimit"
                ),
                fallback_set=True,
            )
        new = self._follow_limit(new)
        was_fallback = self._in_fallback_now()
        if self._store is not None and (
            new != self._settings or new.fallback_set != self._settings.fallback_set
        ):
            try:
                self._store.save(new)  # disk first, then state: a failed save changes nothing
            except OSError as exc:
                log.error("flex_save_failed", device=self._name, reason=str(exc), source=source)
                raise
        self._settings = new
        self._contact()
        log.info(
            "flex_updated",
            device=self._name,
            reason=f"write from {source}",
            activation=new.activation,
            current_limit_a=new.current_limit_a,
            fallback_current_limit_a=new.fallback_current_limit_a,
            left_fallback=was_fallback,
        )
        self._notify()

    def keep_alive(self, *, source: str = "api") -> None:
        """Reset the watchdog; leaves fallback mode if it had expired."""
        was_fallback = self._in_fallback_now()
        if was_fallback and self._overwrite:
            self._settings = replace(
                self._settings, current_limit_a=self._settings.fallback_current_limit_a
            )
        self._contact()
        log.debug("flex_keep_alive", device=self._name, reason=f"keep-alive from {source}")
        if was_fallback:
            log.info("flex_fallback_left", device=self._name, reason=f"keep-alive from {source}")
            self._notify()

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every change, including watchdog expiry."""
        self._listeners.append(callback)

    def close(self) -> None:
        """Cancel the watchdog timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- internals -------------------------------------------------------------------------

    def _follow_limit(self, settings: FlexSettings) -> FlexSettings:
        """A fallback nobody set is never above the EMS's CurrentLimit (nor the default)."""
        if settings.fallback_set or not settings.activation:
            return settings
        follow = min(self._default_fallback_a, settings.current_limit_a)
        return replace(settings, fallback_current_limit_a=follow)

    def _in_fallback(self) -> bool:
        return self._settings.activation and self._expired

    def _in_fallback_now(self) -> bool:
        self._poll()
        return self._in_fallback()

    def _contact(self) -> None:
        self._expired = False
        if self._settings.activation:
            self._arm()
        else:
            self._disarm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self._clock.monotonic() + self.timeout_s
        self._schedule(self.timeout_s)

    def _disarm(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self, delay_s: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        try:
            self._timer = self._clock.call_later(delay_s, self._on_timer)
        except RuntimeError:
            # No running event loop (RealClock outside asyncio): expiry is still detected lazily
            # on every read; only the push notification is missing until the next write.
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if self._deadline is None or self._expired:
            return
        remaining = self._deadline - self._clock.monotonic()
        if remaining > 0:
            self._schedule(remaining)
            return
        self._poll()

    def _poll(self) -> None:
        if (
            self._settings.activation
            and not self._expired
            and self._deadline is not None
            and self._clock.monotonic() >= self._deadline
        ):
            self._expire()

    def _expire(self) -> None:
        self._expired = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        s = self._settings
        if self._overwrite and s.current_limit_a != s.fallback_current_limit_a:
            self._settings = replace(s, current_limit_a=s.fallback_current_limit_a)
            if self._store is not None:
                try:
                    self._store.save(self._settings)
                except OSError as exc:  # the fallback applies anyway; listeners must hear of it
                    log.error("flex_save_failed", device=self._name, reason=str(exc))
        log.warning(
            "flex_watchdog_expired",
            device=self._name,
            reason=f"no write or keep-alive for {self.timeout_s:g} s",
            fallback_current_limit_a=s.fallback_current_limit_a,
            limit_a=min(self.fuse_a, s.fallback_current_limit_a),
        )
        self._notify()

    def _notify(self) -> None:
        for callback in list(self._listeners):
            try:
                callback()
            except Exception as exc:  # a broken listener must not break the API
                log.exception("flex_listener_failed", device=self._name, reason=str(exc))
