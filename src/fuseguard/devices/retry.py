"""Retries with exponential backoff for device exchanges: connection errors only, never garbage.

One policy for every driver (HTTP through :mod:`fuseguard.devices.http`, Modbus in the Bender
driver): a :class:`~fuseguard.control.ports.DeviceConnectionError` (refused, reset, no answer in
time) is retried with tenacity's exponential backoff; an answer that is not valid data
(:class:`~fuseguard.control.ports.DeviceResponseError`) is never retried, because asking a device
that talks garbage again only doubles the garbage.

The backoff sleeps on the event loop's clock, like ``asyncio.timeout`` around a socket read: it is
about the network, not about control time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from fuseguard.control.ports import DeviceConnectionError

T = TypeVar("T")


async def with_retries(
    call: Callable[[], Awaitable[T]], *, attempts: int = 3, backoff_s: float = 0.2
) -> T:
    """``call()``, retried on :class:`DeviceConnectionError`.

    ``attempts`` in all (1 = no retry); the waits between them are ``backoff_s``,
    ``2 * backoff_s``, ... (at most ``5 * backoff_s``).

    Fast path: the first attempt runs directly; the tenacity machinery is built only after it
    failed with a connection error, and its first attempt replays that failure, so attempts and
    waits are exactly those of one ``AsyncRetrying`` around every call (a healthy poll costs no
    retry bookkeeping).
    """
    try:
        return await call()
    except DeviceConnectionError as err:
        if attempts <= 1:
            raise
        return await retry_after(err, call, attempts=attempts, backoff_s=backoff_s)


async def retry_after(
    first: DeviceConnectionError,
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 3,
    backoff_s: float = 0.2,
) -> T:
    """The rest of :func:`with_retries` once its first attempt (made by the caller, on its own
    hot path) failed with ``first``: the attempts and waits are exactly those of
    :func:`with_retries`."""
    failed: DeviceConnectionError | None = first

    async def replay_then_call() -> T:
        nonlocal failed
        if failed is not None:
            failure, failed = failed, None
            raise failure
        return await call()

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(DeviceConnectionError),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=backoff_s, max=5 * backoff_s),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await replay_then_call()
    msg = "unreachable: tenacity re-raises"  # pragma: no cover
    raise AssertionError(msg)  # pragma: no cover


__all__ = ["retry_after", "with_retries"]
