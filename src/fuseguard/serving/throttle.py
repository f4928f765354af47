"""At most one log line per interval for an event a peer can repeat at will.

A refused connection (over the cap, outside ``allowed_hosts``) was logged once per connect: a
connect loop from the LAN wrote one warning per connect (about 3 000 lines in 20 s against the
demo's Modbus twin, unauthenticated), rendered and written in the event loop that also runs
control. :class:`LogThrottle` lets the first line of a burst through and then one line per
``interval_s``, each carrying how many were suppressed before it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

#: the default interval between two lines of one repeated event
DEFAULT_INTERVAL_S = 10.0


class LogThrottle:
    """Decides whether a repeated event is logged now (see the module docstring)."""

    def __init__(
        self,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._logged_at: float | None = None
        self._suppressed = 0

    @property
    def suppressed(self) -> int:
        """Occurrences suppressed since the last line logged."""
        return self._suppressed

    def admit(self) -> int | None:
        """None: do not log this occurrence. Otherwise log it, with the returned number of
        occurrences suppressed since the previous line."""
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < self._interval_s:
            self._suppressed += 1
            return None
        suppressed = self._suppressed
        self._suppressed = 0
        self._logged_at = now
        return suppressed


#: the most (reason, peer) keys a :class:`KeyedLogThrottle` remembers (the oldest is forgotten)
MAX_KEYS = 256


class KeyedLogThrottle:
    """One :class:`LogThrottle` per ``(reason, peer host)``, at most ``max_keys`` of them.

    With one throttle per server, a connect loop from one peer kept the throttle busy, and the
    first refusal of a second peer (or a second reason) fell in the same burst and was never
    logged. Here each peer (its host, not host:port) and reason has its own burst, so a flood
    cannot hide another peer's first line; the key set is bounded (the least recently seen key
    is forgotten past ``max_keys``), so a flood from many addresses cannot grow memory. A
    forgotten key's suppressed count is not lost: the next line logged carries it in
    ``suppressed_forgotten``.
    """

    def __init__(
        self,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._max_keys = max_keys
        self._throttles: OrderedDict[tuple[str, str], LogThrottle] = OrderedDict()
        self._forgotten_suppressed = 0

    def __len__(self) -> int:
        """How many keys are remembered now."""
        return len(self._throttles)

    def admit(self, reason: str, host: str) -> int | None:
        """As :meth:`LogThrottle.admit`, for the burst of ``(reason, host)``."""
        key = (reason, host)
        throttle = self._throttles.get(key)
        if throttle is None:
            throttle = LogThrottle(self._interval_s, self._clock)
            self._throttles[key] = throttle
            while len(self._throttles) > self._max_keys:
                _, oldest = self._throttles.popitem(last=False)
                self._forgotten_suppressed += oldest.suppressed
        else:
            self._throttles.move_to_end(key)
        return throttle.admit()

    def warning(self, logger: Any, event: str, *, reason: str, host: str, **fields: Any) -> None:
        """Log ``event`` at warning level unless the burst of ``(reason, host)`` suppresses it;
        the line carries ``suppressed`` (this key's) and, when some were, ``suppressed_forgotten``
        (``fields``: the rest of the line, e.g. ``device``)."""
        suppressed = self.admit(reason, host)
        if suppressed is None:
            return
        if self._forgotten_suppressed:
            fields["suppressed_forgotten"] = self._forgotten_suppressed
            self._forgotten_suppressed = 0
        logger.warning(event, reason=reason, suppressed=suppressed, **fields)


def peer_host(peer: object) -> str:
    """The host of a peer address (``("10.0.0.5", 50123)`` -> ``"10.0.0.5"``): a throttle key
    and a per-peer count are per host, not per source port."""
    if isinstance(peer, tuple | list) and peer:
        return str(peer[0])
    return "?" if peer is None else str(peer)
