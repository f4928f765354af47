"""What a running edge hands to each of its services (the northbound APIs, the cloud agent, ...).

An edge service is ``async def start(rt: EdgeRuntime) -> None``: it starts its server or task,
registers its shutdown on ``rt.stack`` and its address in ``rt.urls``, and returns. The
composition root (:mod:`fuseguard.edge`) builds the runtime once and starts the services in order.
Adding a northbound service is one module with a ``start`` function and one line in
:data:`fuseguard.edge.SERVICES`.

Stopping is bounded: ``rt.stack`` is a :class:`BoundedExitStack`, so every async stop callback
has :data:`STOP_DEADLINE_S`; one that does not finish in time (a server waiting for a client, a
task that swallows its cancellation) is cancelled and logged by name, and the next one runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from fuseguard.config import FuseguardConfig
from fuseguard.model.clock import Clock

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from fuseguard.control.controller import Controller
    from fuseguard.control.flex import FlexManagement
    from fuseguard.control.targets import EvseTargets


@dataclass
class EdgeRuntime:
    """The shared objects of one running edge."""

    config: FuseguardConfig
    clock: Clock
    controller: Controller
    flex: FlexManagement
    targets: EvseTargets
    engine: AsyncEngine
    data_dir: Path
    stack: contextlib.AsyncExitStack
    urls: dict[str, str] = field(default_factory=dict)
    #: Objects services publish for later services (e.g. the EVSE backend for the cloud agent).
    shared: dict[str, Any] = field(default_factory=dict)


EdgeService = Callable[[EdgeRuntime], Awaitable[None]]

log = structlog.get_logger(__name__)

#: How long one part of the edge (a service's stop callback, the controller) may take to stop.
STOP_DEADLINE_S = 5.0
#: After a stop deadline: how long a cancelled part gets to end before it is abandoned.
_CANCEL_GRACE_S = 1.0


def task_names(tasks: set[asyncio.Task[Any]]) -> list[str]:
    """``name@file:line`` of each task's innermost frame (where it is stuck), sorted."""
    out = []
    for task in tasks:
        where = ""
        stack = task.get_stack(limit=1)  # the innermost frame for a running coroutine
        if stack:
            code = stack[-1].f_code
            where = f"@{code.co_filename.rsplit('/', 1)[-1]}:{stack[-1].f_lineno}"
        out.append(f"{task.get_name()}{where}")
    return sorted(out)


def running_tasks(limit: int = 20) -> list[str]:
    """:func:`task_names` of the loop's unfinished tasks but the current one (at most ``limit``)."""
    current = asyncio.current_task()
    names = task_names({t for t in asyncio.all_tasks() if t is not current and not t.done()})
    return names[:limit] + ([f"... {len(names) - limit} more"] if len(names) > limit else [])


async def stop_within(part: str, stop: Awaitable[object], deadline_s: float) -> None:
    """Await ``stop`` for at most ``deadline_s`` (loop time: shutdown I/O, like a socket timeout).

    Past the deadline it is cancelled and logged (``stop_deadline_missed``, naming ``part``);
    if it does not end within a short grace even then (it swallows its cancellation), it is
    abandoned (``stop_abandoned``). An error of ``stop`` itself is logged, never raised: the
    parts after it must still stop. A cancellation of the caller cancels ``stop`` too.
    """
    task = asyncio.ensure_future(stop)
    try:
        done, _ = await asyncio.wait({task}, timeout=deadline_s)
        if not done:
            log.error(
                "stop_deadline_missed",
                device=part,
                reason=f"not stopped within {deadline_s:g} s: cancelled",
                running=running_tasks(),
            )
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=_CANCEL_GRACE_S)
            if not done:
                log.error(
                    "stop_abandoned",
                    device=part,
                    reason=f"still running {_CANCEL_GRACE_S:g} s after its cancellation",
                )
                return
    finally:
        if not task.done():
            task.cancel()
    if not task.cancelled() and (err := task.exception()) is not None:
        log.error("stop_failed", device=part, reason=repr(err))


def _part_name(callback: Callable[..., object]) -> str:
    owner = getattr(callback, "__self__", None)
    name = getattr(callback, "__qualname__", repr(callback))
    if owner is not None:
        return f"{type(owner).__name__}.{getattr(callback, '__name__', name)}"
    return f"{getattr(callback, '__module__', '?')}.{name}"


class BoundedExitStack(contextlib.AsyncExitStack):
    """An :class:`~contextlib.AsyncExitStack` whose async callbacks each get ``deadline_s``
    (:func:`stop_within`): a stop that hangs is cancelled and logged by name, the rest run."""

    def __init__(self, deadline_s: float = STOP_DEADLINE_S) -> None:
        super().__init__()
        self.deadline_s = deadline_s

    def push_async_callback(  # type: ignore[override]
        self, callback: Callable[..., Awaitable[object]], /, *args: Any, **kwds: Any
    ) -> Callable[..., Awaitable[object]]:
        """Register ``callback(*args, **kwds)`` to run on exit, bounded by ``deadline_s``."""
        part = _part_name(callback)

        async def bounded() -> None:
            await stop_within(part, callback(*args, **kwds), self.deadline_s)

        super().push_async_callback(bounded)
        return callback


def display_host(host: str) -> str:
    """A host a client can connect to: loopback for a wildcard bind."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def display_url(url: str, host: str) -> str:
    """``url`` with a wildcard bind address replaced by loopback."""
    return url.replace(f"//{host}:", f"//{display_host(host)}:") if host else url


__all__ = [
    "STOP_DEADLINE_S",
    "BoundedExitStack",
    "EdgeRuntime",
    "EdgeService",
    "display_host",
    "display_url",
    "running_tasks",
    "stop_within",
    "task_names",
]
