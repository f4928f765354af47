"""Dashboard access: server-side sessions, CSRF tokens and login throttling.

* A login creates a session: a 256-bit random id in the cookie ``fg_session`` (HttpOnly,
  SameSite=Strict, Secure on HTTPS), the user, the role and a CSRF token kept on the server. A
  session ends on logout or after ``idle_s`` without a request; sessions live in memory, so a
  restart of the edge logs everybody out.
* Every write (POST) must carry the session's CSRF token, as the form field ``csrf_token`` or the
  header ``X-CSRF-Token``; the login form itself uses a double-submit token (cookie
  ``fg_login_csrf`` + hidden field), so a foreign page cannot log a browser in either.
* Login throttling: after ``max_failures`` failed logins within ``window_s`` for one user name
  or one client address, further attempts are refused (429) until the window has passed.

Time comes from the injected clock's monotonic seconds.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field

from fuseguard.model.clock import Clock
from fuseguard.store.web import Role

SESSION_COOKIE = "fg_session"
LOGIN_CSRF_COOKIE = "fg_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
MAX_SESSIONS = 1000
_TOKEN_BYTES = 32


@dataclass(slots=True)
class Session:
    """One logged-in browser."""

    id: str
    user: str
    role: Role
    csrf: str
    last_seen: float

    @property
    def is_admin(self) -> bool:
        """May change settings."""
        return self.role is Role.ADMIN


def new_token() -> str:
    """A URL-safe random token (256 bit)."""
    return secrets.token_urlsafe(_TOKEN_BYTES)


def tokens_match(expected: str, given: str | None) -> bool:
    """Constant-time comparison; an empty or missing token never matches."""
    if not expected or not given:
        return False
    return secrets.compare_digest(expected.encode(), given.encode())


@dataclass
class SessionStore:
    """Sessions by id, expired after ``idle_s`` without use; at most :data:`MAX_SESSIONS`."""

    clock: Clock
    idle_s: float
    _sessions: dict[str, Session] = field(default_factory=dict)

    def create(self, user: str, role: Role) -> Session:
        """A new session (the oldest is dropped when the store is full)."""
        self._expire()
        if len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.last_seen)
            del self._sessions[oldest.id]
        session = Session(new_token(), user, role, new_token(), self.clock.monotonic())
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id (touching it), else None."""
        if not session_id or len(session_id) > 100:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self.clock.monotonic()
        if now - session.last_seen > self.idle_s:
            del self._sessions[session_id]
            return None
        session.last_seen = now
        return session

    def drop(self, session_id: str | None) -> None:
        """End a session (logout)."""
        if session_id:
            self._sessions.pop(session_id, None)

    def drop_user(self, user: str) -> None:
        """End every session of ``user``."""
        for sid in [s.id for s in self._sessions.values() if s.user == user]:
            del self._sessions[sid]

    def _expire(self) -> None:
        now = self.clock.monotonic()
        for sid in [s.id for s in self._sessions.values() if now - s.last_seen > self.idle_s]:
            del self._sessions[sid]


#: most keys (user names, addresses) a :class:`LoginThrottle` remembers
MAX_THROTTLE_KEYS = 10_000


@dataclass
class LoginThrottle:
    """Failed logins per key (user name, client address) in a sliding window.

    Memory is bounded: checking a key never stores it, a key whose window is empty is dropped,
    and past :data:`MAX_THROTTLE_KEYS` the key that failed longest ago is forgotten first. (Before,
    every check stored its keys, so a locked-out client sending logins under fresh user names grew
    the table by one entry per request, about 430 bytes each on the demo; and at 10 000 keys the
    whole table was cleared, lifting every lock-out at once.)
    """

    clock: Clock
    max_failures: int = 5
    window_s: float = 300.0
    max_keys: int = MAX_THROTTLE_KEYS
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after_s(self, *keys: str) -> float:
        """Seconds until a login for ``keys`` is allowed again (0: allowed now)."""
        now = self.clock.monotonic()
        wait = 0.0
        for key in keys:
            times = self._window(key, now)
            if times is not None and len(times) >= self.max_failures:
                wait = max(wait, times[0] + self.window_s - now)
        return wait

    def failed(self, *keys: str) -> None:
        """Record one failed login for every key."""
        now = self.clock.monotonic()
        for key in keys:
            times = self._window(key, now) or deque()
            self._failures.pop(key, None)  # re-inserted last: the dict's order is by last failure
            times.append(now)
            while len(times) > self.max_failures:
                times.popleft()
            self._failures[key] = times
        while len(self._failures) > self.max_keys:
            del self._failures[next(iter(self._failures))]  # the key that failed longest ago

    def succeeded(self, *keys: str) -> None:
        """Forget the failures of these keys."""
        for key in keys:
            self._failures.pop(key, None)

    @property
    def keys(self) -> int:
        """How many keys are remembered."""
        return len(self._failures)

    def _window(self, key: str, now: float) -> deque[float] | None:
        """The failures of ``key`` within the window (None, and forgotten, when there are none)."""
        times = self._failures.get(key)
        if times is None:
            return None
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times


__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "LOGIN_CSRF_COOKIE",
    "MAX_THROTTLE_KEYS",
    "SESSION_COOKIE",
    "LoginThrottle",
    "Session",
    "SessionStore",
    "new_token",
    "tokens_match",
]
