"""What a running edge hands to each of its services (the northbound APIs, the cloud agent, ...).

An edge service is ``async def start(rt: EdgeRuntime) -> None``: it starts its server or task,
registers its shutdown on ``rt.stack`` and its address in ``rt.urls``, and returns. The
composition root (:mod:`fuseguard.edge`) builds the runtime once and starts the services in order.
Adding a northbound service is one module with a ``start`` function and one line in
:data:`fuseguard.edge.SERVICES`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


def display_host(host: str) -> str:
    """A host a client can connect to: loopback for a wildcard bind."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def display_url(url: str, host: str) -> str:
    """``url`` with a wildcard bind address replaced by loopback."""
    return url.replace(f"//{host}:", f"//{display_host(host)}:") if host else url


__all__ = ["EdgeRuntime", "EdgeService", "display_host", "display_url"]
