"""The web dashboard's users (argon2id password hashes) and its event log, in the store.

Users: a name, a role (``admin`` may change settings, ``viewer`` may only look) and an argon2id
hash in PHC form (``argon2-cffi``); the password itself is never stored. Hashing and verifying
cost tens of milliseconds of CPU on purpose, so both run in a worker thread.

Events: one row per login, failed login, setting change, EVSE target and fault/fallback
transition, with time, kind and source; the newest :data:`EVENTS_KEPT` rows are kept.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fuseguard.model.clock import Clock, RealClock
from fuseguard.store.db import writing
from fuseguard.store.schema import web_events, web_users

log = structlog.get_logger(__name__)

#: User names: short, printable, no spaces (they appear in logs and the event list).
USER_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
PASSWORD_MIN_CHARS = 8
PASSWORD_MAX_CHARS = 1024
EVENTS_KEPT = 10_000
MESSAGE_MAX_CHARS = 1000
_PRUNE_EVERY = 100

_hasher = PasswordHasher()
#: Verified against when the user does not exist, so that the answer takes as long either way.
_DUMMY_HASH = _hasher.hash("fuseguard-no-such-user")


class Role(StrEnum):
    """What a dashboard user may do."""

    ADMIN = "admin"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class WebUser:
    """A dashboard user (never the password)."""

    name: str
    role: Role
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WebEvent:
    """One row of the event log."""

    id: int
    time: datetime
    kind: str
    source: str
    message: str


def check_user_name(name: str) -> str:
    """``name`` if it is a valid user name, else ValueError."""
    if not USER_NAME.fullmatch(name):
        msg = "user name must be 1-64 characters of letters, digits and _ . @ -"
        raise ValueError(msg)
    return name


def check_password(password: str) -> str:
    """``password`` if it is long enough (and not absurdly long), else ValueError."""
    if not PASSWORD_MIN_CHARS <= len(password) <= PASSWORD_MAX_CHARS:
        msg = f"password must be {PASSWORD_MIN_CHARS}..{PASSWORD_MAX_CHARS} characters"
        raise ValueError(msg)
    return password


class WebUserRepository:
    """Add, verify, list and remove dashboard users."""

    def __init__(self, engine: AsyncEngine, clock: Clock | None = None) -> None:
        self._engine = engine
        self._clock: Clock = clock if clock is not None else RealClock()

    async def add(self, name: str, password: str, role: Role, *, replace: bool = False) -> None:
        """Create ``name`` (ValueError when it exists and ``replace`` is false, or invalid)."""
        check_user_name(name)
        check_password(password)
        role = Role(role)
        digest = await asyncio.to_thread(_hasher.hash, password)
        async with writing(self._engine) as conn:
            exists = (
                await conn.execute(sa.select(web_users.c.name).where(web_users.c.name == name))
            ).first()
            if exists is not None and not replace:
                msg = f"user {name!r} exists"
                raise ValueError(msg)
            if exists is not None:
                await conn.execute(
                    web_users.update()
                    .where(web_users.c.name == name)
                    .values(password_hash=digest, role=role.value)
                )
            else:
                await conn.execute(
                    web_users.insert().values(
                        name=name,
                        password_hash=digest,
                        role=role.value,
                        created_at=self._clock.now(),
                    )
                )
        reason = "replaced" if exists else "new"
        log.info("web_user_added", user=name, role=role.value, reason=reason)

    async def verify(self, name: str, password: str) -> WebUser | None:
        """The user when ``password`` is theirs, else None (same work for unknown users)."""
        if len(password) > PASSWORD_MAX_CHARS or len(name) > 64:
            return None
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(web_users).where(web_users.c.name == name))).first()
        stored = row.password_hash if row is not None else _DUMMY_HASH
        ok = await asyncio.to_thread(_verify, stored, password)
        if row is None or not ok:
            return None
        try:
            role = Role(row.role)
        except ValueError:
            log.warning("web_user_bad_role", user=name, reason=f"role {row.role!r} unknown")
            return None
        return WebUser(row.name, role, row.created_at)

    async def role_of(self, name: str) -> Role | None:
        """The user's role now (None: no such user any more)."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(sa.select(web_users.c.role).where(web_users.c.name == name))
            ).first()
        return _role(row.role) if row is not None else None

    async def list(self) -> list[WebUser]:
        """Every user, by name."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(web_users).order_by(web_users.c.name))).all()
        return [WebUser(r.name, role, r.created_at) for r in rows if (role := _role(r.role))]

    async def remove(self, name: str) -> bool:
        """Delete ``name``; False when there was no such user."""
        async with writing(self._engine) as conn:
            result = await conn.execute(web_users.delete().where(web_users.c.name == name))
        removed = bool(result.rowcount)
        if removed:
            log.info("web_user_removed", user=name, reason="remove requested")
        return removed


def _role(value: str) -> Role | None:
    try:
        return Role(value)
    except ValueError:
        return None


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class WebEventRepository:
    """Append events and read the newest ones."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._since_prune = 0

    async def add(self, time: datetime, kind: str, source: str, message: str) -> None:
        """Append one event (long texts are cut); old rows beyond :data:`EVENTS_KEPT` go."""
        async with writing(self._engine) as conn:
            await conn.execute(
                web_events.insert().values(
                    time=time,
                    kind=kind[:32],
                    source=source[:128],
                    message=message[:MESSAGE_MAX_CHARS],
                )
            )
            self._since_prune += 1
            if self._since_prune >= _PRUNE_EVERY:
                self._since_prune = 0
                await _prune(conn)

    async def recent(self, limit: int = 200, kind: str | None = None) -> list[WebEvent]:
        """The newest events first (at most ``limit``; only ``kind`` when given)."""
        query = sa.select(web_events).order_by(web_events.c.id.desc()).limit(max(1, limit))
        if kind:
            query = query.where(web_events.c.kind == kind)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [WebEvent(r.id, r.time, r.kind, r.source, r.message) for r in rows]


async def _prune(conn: AsyncConnection) -> None:
    newest = (await conn.execute(sa.select(sa.func.max(web_events.c.id)))).scalar()
    if newest is not None and newest > EVENTS_KEPT:
        await conn.execute(web_events.delete().where(web_events.c.id <= newest - EVENTS_KEPT))


__all__ = [
    "EVENTS_KEPT",
    "PASSWORD_MIN_CHARS",
    "Role",
    "WebEvent",
    "WebEventRepository",
    "WebUser",
    "WebUserRepository",
    "check_password",
    "check_user_name",
]
