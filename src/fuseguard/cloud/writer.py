"""The one database writer of a cloud replica: statuses, edge states and acknowledged targets,
group-committed.

Everything queued while the previous transaction ran goes into the next one, so under load many
status messages and target writes share one database round trip (SQLite has one writer anyway).

Statuses may wait up to ``linger_s`` for company (the cloud's default: 50 ms, ``[api]
status_linger_s``): every replica receives every status an edge sends (after each ack, too), and
written one by one they cost each replica a statement and a commit apiece. An acknowledged
target never waits: it is written at once, with the held statuses of its own EVSE only (so its
row exists); the other held rows follow when their time is up. An edge's online/offline state
(rare, and read from the database after a reconnect) is written at once with what is held.
Every row is guarded by the edge's stamps, so the order of these writes does not matter;
``flush()`` writes what is held at once.

A batch that fails is retried row by row, so one row the database refuses costs only that row:
the other edges' statuses are written and their acknowledged targets recorded. The writer task
itself never ends on an error (only on cancel).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import structlog

from fuseguard.cloud.protocol import EdgeState, EvseStatusMessage, describe_error
from fuseguard.cloud.store import CloudStore, TargetWrite

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _TargetJob:
    write: TargetWrite
    done: asyncio.Future[None]


@dataclass(frozen=True, slots=True)
class _StateJob:
    edge_device_id: str
    state: EdgeState


_WriteJob = tuple[str, EvseStatusMessage] | _TargetJob | _StateJob
_FLUSH = object()  # a flush() request in the queue: write what is held now


@dataclass(slots=True)
class _Batch:
    statuses: list[tuple[str, EvseStatusMessage]] = field(default_factory=list)
    targets: list[_TargetJob] = field(default_factory=list)
    states: list[_StateJob] = field(default_factory=list)

    def add(self, job: _WriteJob) -> None:
        if isinstance(job, _TargetJob):
            self.targets.append(job)
        elif isinstance(job, _StateJob):
            self.states.append(job)
        else:
            self.statuses.append(job)

    def __len__(self) -> int:
        return len(self.statuses) + len(self.targets) + len(self.states)

    def split_targets(self) -> tuple[_Batch, _Batch]:
        """(the targets with the statuses of their EVSEs, the rest)."""
        keys = {(t.write.edge_device_id, t.write.evse_uuid) for t in self.targets}
        own = [s for s in self.statuses if (s[0], s[1].evse_uuid) in keys]
        rest = [s for s in self.statuses if (s[0], s[1].evse_uuid) not in keys]
        return _Batch(statuses=own, targets=self.targets), _Batch(rest, [], self.states)

    def rows(self) -> list[_Batch]:
        """Each row as a batch of its own."""
        return [
            *(_Batch(statuses=[s]) for s in self.statuses),
            *(_Batch(states=[s]) for s in self.states),
            *(_Batch(targets=[t]) for t in self.targets),
        ]


class CloudWriter:
    """Queue of writes for :class:`CloudStore`; ``start()`` runs the writer task."""

    def __init__(self, store: CloudStore, *, batch_max: int = 500, linger_s: float = 0.0) -> None:
        self.store = store
        self._batch_max = batch_max
        self._linger_s = linger_s
        self._queue: asyncio.Queue[_WriteJob | object] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._held = _Batch()  # taken from the queue, not written yet
        self._held_since = 0.0  # loop time of the oldest held row
        self._flush_now = False

    def start(self) -> None:
        """Start the writer task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="cloud-db-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop the task."""
        if self._task is None:
            return
        await self.flush()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def flush(self) -> None:
        """Wait until everything queued so far is written (or dropped, logged)."""
        if self._task is not None:
            self._queue.put_nowait(_FLUSH)
        await self._queue.join()

    def put_status(self, edge_device_id: str, status: EvseStatusMessage) -> None:
        """Queue a status upsert (fire and forget)."""
        self._queue.put_nowait((edge_device_id, status))

    def put_state(self, edge_device_id: str, state: EdgeState) -> None:
        """Queue an online/offline upsert (fire and forget)."""
        self._queue.put_nowait(_StateJob(edge_device_id, state))

    async def write_target(self, write: TargetWrite) -> None:
        """Write an acknowledged target and wait for the commit (directly when not started)."""
        if self._task is None:
            await self.store.apply_batch((), [write])
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_TargetJob(write, done))
        await done

    def _take(self, job: _WriteJob | object) -> None:
        if job is _FLUSH:
            self._flush_now = True
            self._queue.task_done()
            return
        if not len(self._held):
            self._held_since = asyncio.get_running_loop().time()
        self._held.add(job)  # type: ignore[arg-type]  # every other item is a _WriteJob

    def _ready(self) -> _Batch | None:
        """The batch to write now, if any (module docstring: targets at once, others linger)."""
        held = self._held
        if held.targets and self._linger_s > 0 and not self._flush_now:
            batch, self._held = held.split_targets()
            return batch
        due = self._held_since + self._linger_s <= asyncio.get_running_loop().time()
        if len(held) and (self._flush_now or due or held.states or len(held) >= self._batch_max):
            self._held, self._flush_now = _Batch(), False
            return held
        self._flush_now = self._flush_now and bool(len(held))
        return None

    async def _next_batch(self) -> _Batch:
        queue = self._queue
        while True:
            if not len(self._held):
                self._take(await queue.get())
            while len(self._held) < self._batch_max and not queue.empty():
                self._take(queue.get_nowait())
            batch = self._ready()
            if batch is not None:
                return batch
            if len(self._held):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(self._held_since + self._linger_s):
                        self._take(await queue.get())

    async def _run(self) -> None:
        queue = self._queue
        while True:
            batch = await self._next_batch()
            size = len(batch)
            try:
                await self._write_batch(batch)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # never end the writer
                log.exception("db_writer_error", reason=describe_error(err))
                _fail(batch.targets, err)
            finally:
                for _ in range(size):
                    queue.task_done()

    async def _write_batch(self, batch: _Batch) -> None:
        """One transaction for the batch; if it fails, each row on its own."""
        try:
            await self.store.apply_batch(
                batch.statuses,
                [job.write for job in batch.targets],
                [(job.edge_device_id, job.state) for job in batch.states],
            )
        except asyncio.CancelledError:
            raise
        except Exception as err:  # retried row by row below
            if len(batch) == 1:
                _log_row_failure(batch, err)
                _fail(batch.targets, err)
                return
            log.warning(
                "db_batch_failed",
                statuses=len(batch.statuses),
                targets=len(batch.targets),
                states=len(batch.states),
                reason=describe_error(err),
            )
        else:
            _succeed(batch.targets)
            return
        for row in batch.rows():
            await self._write_batch(row)


def _log_row_failure(batch: _Batch, err: Exception) -> None:
    if batch.statuses:
        edge_device_id, evse_uuid, what = (
            batch.statuses[0][0],
            batch.statuses[0][1].evse_uuid,
            "status",
        )
    elif batch.states:
        edge_device_id, evse_uuid, what = batch.states[0].edge_device_id, None, "state"
    else:
        write = batch.targets[0].write
        edge_device_id, evse_uuid, what = write.edge_device_id, write.evse_uuid, "target"
    log.warning(
        "db_row_dropped",
        edge=edge_device_id,
        evse=evse_uuid,
        row=what,
        reason=describe_error(err),
    )


def _succeed(targets: list[_TargetJob]) -> None:
    for job in targets:
        if not job.done.done():
            job.done.set_result(None)


def _fail(targets: list[_TargetJob], err: Exception) -> None:
    for job in targets:
        if not job.done.done():
            job.done.set_exception(err)
