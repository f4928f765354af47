"""Which request parser and event loop: h11 or httptools, asyncio or uvloop.

h11 is uvicorn's default (pure Python); httptools (llhttp) parses faster with the same guards
(:mod:`.httptools_guard`). uvloop is a faster event loop (a dependency except on Windows;
httptools comes with the ``cloud`` extra): ``auto`` takes them when installed, else h11 and
asyncio.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable
from typing import Literal

from fuseguard.serving.protocols import GuardedH11Protocol


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


HttpParser = Literal["auto", "h11", "httptools"]
EventLoop = Literal["auto", "asyncio", "uvloop"]


def http_protocol(parser: HttpParser = "h11") -> type[asyncio.Protocol]:
    """The guarded protocol for ``parser``; ``auto``: httptools when installed, else h11.

    ``httptools`` when it is not installed raises ImportError.
    """
    if parser == "httptools" or (parser == "auto" and _has("httptools")):
        from fuseguard.serving.httptools_guard import GuardedHttpToolsProtocol  # optional

        return GuardedHttpToolsProtocol
    return GuardedH11Protocol


class LoopUnavailableError(RuntimeError):
    """``--loop uvloop`` (or ``server.loop = "uvloop"``) where uvloop is not installed."""


def loop_factory(choice: EventLoop = "asyncio") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """For :class:`asyncio.Runner`: uvloop's loop, or None (asyncio's own).

    ``auto``: uvloop when installed; ``uvloop`` when it is not installed raises
    :class:`LoopUnavailableError` (a message for the user, not a traceback).
    """
    if choice == "uvloop" or (choice == "auto" and _has("uvloop")):
        try:
            import uvloop  # not on Windows
        except ImportError as err:
            raise LoopUnavailableError(
                "the uvloop event loop is not installed (it has no Windows build):"
                " choose the loop auto or asyncio"
            ) from err
        return uvloop.new_event_loop
    return None
