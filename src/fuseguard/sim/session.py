"""The charging session of one charge point and its authorisation (no I/O, no clock).

One record for what the Bender legacy REST API calls ``auth_state`` / ``transaction_wh`` and
OCPP 1.6 calls a transaction: an authorisation (an RFID card, the backend, or free charging),
the session it starts, the energy it delivers, and when it started and ended. Times are the
owning :class:`~fuseguard.sim.chargepoint.ChargePoint`'s monotonic seconds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Session:
    """Authorisation and session state of a charge point."""

    authorized: bool = False
    uid: str = ""  #: RFID card that authorised (empty: none or the backend)
    timed_out: bool = False  #: an authorisation without a car ran out
    active: bool = False
    stopped: bool = False  #: stopped while the car stays plugged in (OCPP ``finishing``)
    started_s: float | None = None  #: of the current or last session
    ended_s: float | None = None  #: of the last session (None while one runs)
    energy_wh: float = 0.0
    has_drawn: bool = False  #: the car has drawn current in this session
    waiting_since_s: float | None = None  #: authorised before the car arrived

    def start(self, now_s: float) -> None:
        """Start a session (the car is plugged in and authorised)."""
        self.authorized = True
        self.waiting_since_s = None
        self.active = True
        self.stopped = False
        self.started_s = now_s
        self.ended_s = None
        self.energy_wh = 0.0
        self.has_drawn = False

    def authorize(self, uid: str | None, now_s: float, *, car_present: bool) -> None:
        """An authorisation arrives: it starts the session now or waits for the car."""
        self.authorized = True
        self.uid = uid or ""
        self.timed_out = False
        if car_present:
            self.start(now_s)
        else:
            self.waiting_since_s = now_s

    def stop(self, now_s: float) -> bool:
        """Stop the running session (the car stays plugged in); False when none runs."""
        if not self.active:
            return False
        self.active = False
        self.stopped = True
        self.ended_s = now_s
        return True

    def end(self, now_s: float) -> None:
        """The car left: the session ends and the authorisation with it."""
        if self.active:
            self.ended_s = now_s
        self.authorized = False
        self.uid = ""
        self.waiting_since_s = None
        self.active = False
        self.stopped = False
        self.energy_wh = 0.0
        self.has_drawn = False

    def expire(self, now_s: float, timeout_s: float) -> bool:
        """An authorisation that waited ``timeout_s`` for a car runs out; True when it did."""
        since = self.waiting_since_s
        if since is None or now_s - since < timeout_s:
            return False
        self.authorized = False
        self.uid = ""
        self.waiting_since_s = None
        self.timed_out = True
        return True

    def duration_s(self, now_s: float) -> float:
        """Seconds since the session started, running on while a stopped car stays plugged in
        (0 without a session)."""
        if self.started_s is None or not (self.active or self.stopped):
            return 0.0
        return now_s - self.started_s


__all__ = ["Session"]
