"""The one database writer of a cloud replica: statuses and acknowledged targets, group-committed.

Everything queued while the previous transaction ran goes into the next one, so under load many
status messages and target writes share one database round trip (SQLite has one writer anyway).

A batch that fails is retried row by row, so one row the database refuses costs only that row:
the other edges' statuses are written and their acknowledged targets recorded. The writer task
itself never ends on an error (only on cancel).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import structlog

from fuseguard.cloud.protocol import EvseStatusMessage, describe_error
from fuseguard.cloud.store import CloudStore, TargetWrite

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _TargetJob:
    write: TargetWrite
    done: asyncio.Future[None]


_WriteJob = tuple[str, EvseStatusMessage] | _TargetJob


class CloudWriter:
    """Queue of writes for :class:`CloudStore`; ``start()`` runs the writer task."""

    def __init__(self, store: CloudStore, *, batch_max: int = 500) -> None:
        self.store = store
        self._batch_max = batch_max
        self._queue: asyncio.Queue[_WriteJob] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

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
        await self._queue.join()

    def put_status(self, edge_device_id: str, status: EvseStatusMessage) -> None:
        """Queue a status upsert (fire and forget)."""
        self._queue.put_nowait((edge_device_id, status))

    async def write_target(self, write: TargetWrite) -> None:
        """Write an acknowledged target and wait for the commit (directly when not started)."""
        if self._task is None:
            await self.store.apply_batch((), [write])
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_TargetJob(write, done))
        await done

    async def _run(self) -> None:
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while len(batch) < self._batch_max and not queue.empty():
                batch.append(queue.get_nowait())
            statuses = [job for job in batch if isinstance(job, tuple)]
            targets = [job for job in batch if isinstance(job, _TargetJob)]
            try:
                await self._write_batch(statuses, targets)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # never end the writer
                log.exception("db_writer_error", reason=describe_error(err))
                _fail(targets, err)
            finally:
                for _ in batch:
                    queue.task_done()

    async def _write_batch(
        self, statuses: list[tuple[str, EvseStatusMessage]], targets: list[_TargetJob]
    ) -> None:
        """One transaction for the batch; if it fails, each row on its own."""
        try:
            await self.store.apply_batch(statuses, [job.write for job in targets])
        except asyncio.CancelledError:
            raise
        except Exception as err:  # retried row by row below
            if len(statuses) + len(targets) == 1:
                _log_row_failure(statuses, targets, err)
                _fail(targets, err)
                return
            log.warning(
                "db_batch_failed",
                statuses=len(statuses),
                targets=len(targets),
                reason=describe_error(err),
            )
        else:
            _succeed(targets)
            return
        for status in statuses:
            await self._write_batch([status], [])
        for job in targets:
            await self._write_batch([], [job])


def _log_row_failure(
    statuses: list[tuple[str, EvseStatusMessage]], targets: list[_TargetJob], err: Exception
) -> None:
    if statuses:
        edge_device_id, evse_uuid, what = statuses[0][0], statuses[0][1].evse_uuid, "status"
    else:
        write = targets[0].write
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
