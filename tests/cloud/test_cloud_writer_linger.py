"""The cloud writer's linger: statuses wait to share a write, acknowledged targets never wait.

A recording store stands in for the database (the writer only calls ``apply_batch``), so the
tests see which rows went into which write. A long linger (60 s) makes "not yet written"
certain without timing; ``flush()`` and targets must not wait for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

from fuseguard.cloud.protocol import EdgeState, EvseStatusMessage, PlugInfoWire
from fuseguard.cloud.store import CloudStore, StoredTarget, TargetWrite
from fuseguard.cloud.writer import CloudWriter

_Row = tuple[str, ...]


class _Recorder:
    """``apply_batch`` that records each write as (statuses, targets, states) keys."""

    def __init__(self) -> None:
        self.writes: list[tuple[list[_Row], list[_Row], list[_Row]]] = []

    async def apply_batch(
        self,
        statuses: Sequence[tuple[str, EvseStatusMessage]],
        targets: Sequence[TargetWrite],
        states: Sequence[tuple[str, EdgeState]] = (),
    ) -> tuple[int, int]:
        await asyncio.sleep(0)
        self.writes.append(
            (
                [(edge, msg.evse_uuid, str(msg.seq)) for edge, msg in statuses],
                [(t.edge_device_id, t.evse_uuid, str(t.seq)) for t in targets],
                [(edge, s.state) for edge, s in states],
            )
        )
        return len(statuses), len(targets)


def _status(evse: str, seq: int) -> EvseStatusMessage:
    return EvseStatusMessage(
        seq=seq, evse_uuid=evse, min_current_a=6, max_current_a=32,
        plugs=[PlugInfoWire(uuid="p" * 32, label="Plug 1")],
    )  # fmt: skip


def _target(evse: str, seq: int) -> TargetWrite:
    return TargetWrite("e1", evse, StoredTarget(10, datetime(2030, 1, 1, tzinfo=UTC)), seq)


def _writer(linger_s: float) -> tuple[CloudWriter, _Recorder]:
    store = _Recorder()
    writer = CloudWriter(cast("CloudStore", store), linger_s=linger_s)
    writer.start()
    return writer, store


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_statuses_wait_for_company_until_flush() -> None:
    writer, store = _writer(60.0)
    writer.put_status("e1", _status("a" * 32, 1))
    writer.put_status("e1", _status("b" * 32, 1))
    await _settle()
    assert store.writes == []  # held: the linger is not over
    async with asyncio.timeout(5):
        await writer.flush()
    assert store.writes == [([("e1", "a" * 32, "1"), ("e1", "b" * 32, "1")], [], [])]
    await writer.stop()


async def test_an_edge_state_is_written_at_once_with_what_is_held() -> None:
    writer, store = _writer(60.0)
    writer.put_status("e1", _status("a" * 32, 1))
    await _settle()
    writer.put_state("e2", EdgeState(state="offline", session=1))
    async with asyncio.timeout(5):
        while not store.writes:
            await asyncio.sleep(0)
    assert store.writes == [([("e1", "a" * 32, "1")], [], [("e2", "offline")])]
    await writer.stop()


async def test_a_target_is_written_at_once_with_its_own_evse_status_only() -> None:
    writer, store = _writer(60.0)
    writer.put_status("e1", _status("a" * 32, 1))
    writer.put_status("e1", _status("b" * 32, 1))
    await _settle()
    async with asyncio.timeout(5):
        await writer.write_target(_target("b" * 32, 2))
    assert store.writes == [([("e1", "b" * 32, "1")], [("e1", "b" * 32, "2")], [])]
    async with asyncio.timeout(5):
        await writer.stop()  # writes the rest
    assert store.writes[1:] == [([("e1", "a" * 32, "1")], [], [])]


async def test_held_statuses_are_written_when_the_linger_is_over() -> None:
    writer, store = _writer(0.02)
    writer.put_status("e1", _status("a" * 32, 1))
    writer.put_status("e1", _status("a" * 32, 2))
    async with asyncio.timeout(5):
        while not store.writes:
            await asyncio.sleep(0.01)
    assert store.writes == [([("e1", "a" * 32, "1"), ("e1", "a" * 32, "2")], [], [])]
    await writer.stop()


async def test_without_linger_everything_queued_goes_into_one_write() -> None:
    writer, store = _writer(0.0)
    writer.put_status("e1", _status("a" * 32, 1))
    writer.put_status("e1", _status("b" * 32, 1))
    async with asyncio.timeout(5):
        await writer.write_target(_target("b" * 32, 2))
        await writer.flush()
    rows = [r for w in store.writes for part in w for r in part]
    assert sorted(rows) == sorted(
        [("e1", "a" * 32, "1"), ("e1", "b" * 32, "1"), ("e1", "b" * 32, "2")]
    )
    assert len(store.writes) == 1  # all queued before the writer ran
    await writer.stop()
