"""At most one log line per interval for an event a peer can repeat at will.

A refused connection (over the cap, outside ``allowed_hosts``) was logged once per connect: a
connect loop from the LAN wrote one warning per connect (about 3 000 lines in 20 s against the
demo's Modbus twin, unauthenticated), rendered and written in the event loop that also runs
control. :class:`LogThrottle` lets the first line of a burst through and then one line per
``interval_s``, each carrying how many were suppressed before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

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
