"""Waiting for a cancelled subtask without losing a cancel of the waiting task.

``with suppress(CancelledError): await task`` after ``task.cancel()`` also swallows a cancel of
the *waiting* task that arrives during that await: in a loop the waiter then carries on as if
nothing happened, and whoever cancelled it waits for it for ever (a virtual OCPP station whose
connection closed while it was being stopped reconnected until the test's 120 s timeout; round
13). :func:`reap` ends the subtask's own cancel and failure and raises the waiter's.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def reap(task: asyncio.Future[Any]) -> BaseException | None:
    """Wait for ``task`` (cancelled by the caller, or ending): returns its failure, or None when
    it ended or was cancelled; raises ``CancelledError`` when the calling task itself is
    cancelled meanwhile."""
    me = asyncio.current_task()
    before = 0 if me is None else me.cancelling()
    try:
        await task
    except asyncio.CancelledError:
        if me is not None and me.cancelling() > before:
            raise
    except Exception as err:
        return err
    return None


__all__ = ["reap"]
