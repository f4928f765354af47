"""``model.tasks.reap``: waiting for a cancelled subtask never swallows a cancel of the waiting
task (the virtual station's reader; a swallowed cancel let a stopping station reconnect for
ever)."""

from __future__ import annotations

import asyncio

import pytest

from fuseguard.model.tasks import reap


async def _slow_to_stop(stopping: asyncio.Event, release: asyncio.Event) -> None:
    """A subtask that takes its time to end after its cancel (a reader closing its socket)."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        stopping.set()
        await release.wait()
        raise


async def test_a_cancel_of_the_waiter_arriving_meanwhile_is_raised() -> None:
    stopping, release = asyncio.Event(), asyncio.Event()
    reader = asyncio.create_task(_slow_to_stop(stopping, release))
    await asyncio.sleep(0)
    after: list[str] = []

    async def converse() -> None:
        reader.cancel()
        await reap(reader)
        after.append("went on")  # the old suppress(CancelledError) got here: it reconnected

    waiter = asyncio.create_task(converse())
    await stopping.wait()
    waiter.cancel()  # the rig stops the station while it waits for its reader
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert after == []
    assert reader.cancelled()


async def test_the_subtasks_own_cancel_and_failure_end_there() -> None:
    reader = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    reader.cancel()
    assert await reap(reader) is None  # its cancel is not ours: nothing raised

    async def fails() -> None:
        raise ConnectionResetError("peer gone")

    broken = asyncio.create_task(fails())
    failed = await reap(broken)  # its failure ends here too, and is handed back
    assert isinstance(failed, ConnectionResetError)
