"""LiveHub: one rendering per status shared by every viewer, no per-viewer work in the listener."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fuseguard.api.web.live import LiveHub

VIEWERS = 20


def _render_counting(calls: list[int]) -> Any:
    def render(status: int) -> dict[str, Any]:
        calls.append(status)
        return {"cycle": status}

    return render


async def _next_status(stream: AsyncIterator[bytes]) -> dict[str, Any]:
    while True:
        chunk = await stream.__anext__()
        if chunk.startswith(b"event: status"):
            data: dict[str, Any] = json.loads(chunk.split(b"data: ", 1)[1])
            return data


async def test_one_rendering_per_status_for_twenty_viewers() -> None:
    calls: list[int] = []
    hub: LiveHub[int] = LiveHub(_render_counting(calls), lambda: 1)
    streams = [hub.stream(lambda: "now") for _ in range(VIEWERS)]
    firsts = await asyncio.gather(*(_next_status(s) for s in streams))
    assert firsts == [{"cycle": 1}] * VIEWERS
    assert hub.viewers == VIEWERS
    assert calls == [1]  # rendered once for all twenty

    waiting = [asyncio.ensure_future(_next_status(s)) for s in streams]
    await asyncio.sleep(0)  # every viewer waits for the next status
    hub.on_status(2)
    hub.on_status(3)  # two cycles before anyone woke: the viewers skip to the newest
    assert calls == [1]  # the listener itself renders nothing and wakes nobody synchronously
    assert not any(w.done() for w in waiting)
    seconds = await asyncio.gather(*waiting)
    assert seconds == [{"cycle": 3}] * VIEWERS
    assert calls == [1, 3]
    assert hub.renders == 2
    hub.close()
    for s in streams:
        await s.aclose()
    assert hub.viewers == 0


async def test_listener_without_viewers_only_stores() -> None:
    calls: list[int] = []
    hub: LiveHub[int] = LiveHub(_render_counting(calls))
    for cycle in range(100):
        hub.on_status(cycle)
    assert calls == []
    assert hub.latest == 99
    stream = hub.stream(lambda: "now")
    assert await _next_status(stream) == {"cycle": 99}
    assert calls == [99]
    hub.close()
    await stream.aclose()


async def test_ping_when_nothing_moves(monkeypatch: Any) -> None:
    monkeypatch.setattr("fuseguard.api.web.live.PING_S", 0.01)
    hub: LiveHub[int] = LiveHub(_render_counting([]))
    stream = hub.stream(lambda: "2026-01-01T00:00:00+00:00")
    assert (await stream.__anext__()).startswith(b"retry: ")
    ping = await stream.__anext__()
    assert ping.startswith(b"event: ping")
    assert b"2026-01-01T00:00:00+00:00" in ping
    hub.close()
    await stream.aclose()
