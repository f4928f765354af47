"""Round 9 red team: the dashboard's failed-login table is bounded and keeps its lock-outs.

Before, ``LoginThrottle.retry_after_s`` stored every key it checked: a locked-out client posting
logins under fresh user names (answered 429, so never counted) grew the table by one entry per
request, without bound (+13 MB for 30 000 requests on the demo); and at 10 000 keys ``failed``
cleared the whole table, lifting every lock-out at once.
"""

from __future__ import annotations

from fuseguard.api.web.auth import LoginThrottle
from fuseguard.model.clock import VirtualClock


def _locked_out(throttle: LoginThrottle, *keys: str) -> bool:
    return throttle.retry_after_s(*keys) > 0


def test_checks_from_a_locked_out_client_store_nothing() -> None:
    throttle = LoginThrottle(VirtualClock(), max_failures=5, window_s=300.0)
    for _ in range(5):
        throttle.failed("user:admin", "ip:10.0.0.9")
    assert _locked_out(throttle, "user:x", "ip:10.0.0.9")
    for i in range(5000):  # what the login route checks before it answers 429
        assert _locked_out(throttle, f"user:guess{i}", "ip:10.0.0.9")
    assert throttle.keys == 2


async def test_expired_keys_are_forgotten() -> None:
    clock = VirtualClock()
    throttle = LoginThrottle(clock, max_failures=5, window_s=300.0)
    throttle.failed("user:a", "ip:10.0.0.1")
    await clock.advance(301.0)
    assert not _locked_out(throttle, "user:a", "ip:10.0.0.1")
    assert throttle.keys == 0


async def test_a_full_table_forgets_the_oldest_failures_not_the_lock_outs() -> None:
    clock = VirtualClock()
    throttle = LoginThrottle(clock, max_failures=5, window_s=300.0, max_keys=100)
    for i in range(60):
        throttle.failed(f"user:old{i}", f"ip:10.0.1.{i}")
    await clock.advance(1.0)
    for _ in range(5):
        throttle.failed("user:admin", "ip:10.0.0.9")
    await clock.advance(1.0)
    for i in range(49):  # a flood of other names and addresses fills the table
        throttle.failed(f"user:new{i}")
    assert throttle.keys == 100
    assert _locked_out(throttle, "user:admin")
    assert _locked_out(throttle, "ip:10.0.0.9")
