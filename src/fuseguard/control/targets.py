"""Per-EVSE current targets from the Direct EVSE Control API, with expiry on the injected clock.

A target caps every plug of one EVSE at ``current_a`` (0 pauses) until ``valid_until``; after that
it is gone by itself. Targets are persisted through a :class:`TargetStore` so that they survive a
restart (an expired one is dropped on load).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from fuseguard.model.clock import Clock, TimerHandle

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Target:
    """A current cap for one EVSE (A, all phases) valid until ``valid_until`` (aware UTC)."""

    current_a: int
    valid_until: datetime


class TargetStore(Protocol):
    """Where targets are persisted (``fuseguard.store.targets.SqlTargetStore``)."""

    async def load_all(self) -> dict[str, Target]:
        """Every stored target by EVSE uuid (expired ones included)."""

    async def save(self, evse_uuid: str, target: Target | None) -> None:
        """Store ``target`` for ``evse_uuid``; None deletes it."""


class MemoryTargetStore:
    """A :class:`TargetStore` in a dict (tests, and an edge without storage)."""

    def __init__(self) -> None:
        self.targets: dict[str, Target] = {}

    async def load_all(self) -> dict[str, Target]:
        """A copy of the stored targets."""
        return dict(self.targets)

    async def save(self, evse_uuid: str, target: Target | None) -> None:
        """Store or delete."""
        if target is None:
            self.targets.pop(evse_uuid, None)
        else:
            self.targets[evse_uuid] = target


class EvseTargets:
    """The targets in force, by EVSE uuid; expiry runs on ``clock.call_later``."""

    def __init__(self, clock: Clock, store: TargetStore | None = None) -> None:
        self._clock = clock
        self._store: TargetStore = store if store is not None else MemoryTargetStore()
        self._targets: dict[str, Target] = {}
        self._timers: dict[str, TimerHandle] = {}
        self._subscribers: list[Callable[[], None]] = []

    async def load(self) -> None:
        """Read persisted targets; expired ones are deleted, live ones get their expiry timer."""
        stored = await self._store.load_all()
        now = self._clock.now()
        for evse_uuid, target in stored.items():
            if target.valid_until <= now:
                await self._store.save(evse_uuid, None)
                log.info("target_dropped_on_load", evse=evse_uuid, reason="expired")
                continue
            self._install(evse_uuid, target)
            log.info(
                "target_restored",
                evse=evse_uuid,
                current_a=target.current_a,
                valid_until=target.valid_until.isoformat(),
                reason="persisted before restart",
            )
        self._notify()

    async def set(self, evse_uuid: str, current_a: int, duration_s: int) -> Target:
        """Cap ``evse_uuid`` at ``current_a`` for ``duration_s`` seconds (replaces any target)."""
        if current_a < 0:
            msg = f"current_a must be >= 0, got {current_a}"
            raise ValueError(msg)
        if duration_s <= 0:
            msg = f"duration_s must be > 0, got {duration_s}"
            raise ValueError(msg)
        target = Target(current_a, self._clock.now() + timedelta(seconds=duration_s))
        await self._store.save(evse_uuid, target)
        self._install(evse_uuid, target)
        log.info(
            "target_set",
            evse=evse_uuid,
            current_a=current_a,
            duration_s=duration_s,
            reason="api request",
        )
        self._notify()
        return target

    def get(self, evse_uuid: str) -> Target | None:
        """The target in force, None when there is none or it has expired."""
        target = self._targets.get(evse_uuid)
        if target is None or target.valid_until <= self._clock.now():
            return None
        return target

    async def clear(self, evse_uuid: str) -> Target | None:
        """Remove the target; returns the one valid before (None if none was)."""
        previous = self.get(evse_uuid)
        await self._store.save(evse_uuid, None)
        self._targets.pop(evse_uuid, None)
        timer = self._timers.pop(evse_uuid, None)
        if timer is not None:
            timer.cancel()
        log.info("target_cleared", evse=evse_uuid, had_target=previous is not None, reason="api")
        self._notify()
        return previous

    def cap_a(self, evse_uuid: str) -> int | None:
        """The cap the controller applies to every plug of ``evse_uuid`` (None: no cap)."""
        target = self.get(evse_uuid)
        return None if target is None else target.current_a

    def all(self) -> dict[str, Target]:
        """Every target in force."""
        return {uuid: t for uuid in self._targets if (t := self.get(uuid)) is not None}

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every set, clear, load and expiry."""
        self._subscribers.append(callback)

    def _install(self, evse_uuid: str, target: Target) -> None:
        old = self._timers.pop(evse_uuid, None)
        if old is not None:
            old.cancel()
        self._targets[evse_uuid] = target
        delay_s = (target.valid_until - self._clock.now()).total_seconds()
        self._timers[evse_uuid] = self._clock.call_later(
            delay_s, lambda: self._expire(evse_uuid, target)
        )

    def _expire(self, evse_uuid: str, target: Target) -> None:
        if self._targets.get(evse_uuid) != target:
            return
        del self._targets[evse_uuid]
        self._timers.pop(evse_uuid, None)
        # The stored row stays until the next set/clear/load; load() drops it as expired.
        log.info(
            "target_expired", evse=evse_uuid, current_a=target.current_a, reason="duration over"
        )
        self._notify()

    def _notify(self) -> None:
        for callback in list(self._subscribers):
            try:
                callback()
            except Exception:
                log.exception("target_subscriber_failed", reason="callback raised")
