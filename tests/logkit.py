"""Errors-only, plain log output for tests that read no log output.

structlog's defaults (what a test sees when no command under test configured logging) render
every event, debug included, with the dev ``ConsoleRenderer``, and exceptions with rich's
syntax-highlighted tracebacks (~0.1 s of CPU each: a driver-bug test logs one per poll). Nobody
reads that output unless a test fails. :func:`errors_only_logging` keeps the events that matter
when one does (error and above, with a plain traceback, printed and so captured by pytest) and
drops the rest after one level check. ``structlog.testing.capture_logs`` still sees every event:
it replaces the processors, not the level filter.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog


def _errors_only(_logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
    if structlog.processors.NAME_TO_LEVEL.get(method, logging.CRITICAL) < logging.ERROR:
        raise structlog.DropEvent
    return event


def errors_only_logging() -> None:
    """Configure structlog (until ``structlog.reset_defaults()``) as described above."""
    structlog.configure(
        processors=[
            _errors_only,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.KeyValueRenderer(key_order=["level", "event"]),
        ],
    )
