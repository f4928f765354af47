"""Structured logging: structlog over stdlib logging; console on a terminal, JSON otherwise.

uvicorn, aiohttp, pymodbus and SQLAlchemy log through stdlib and get the same format.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def configure_logging(
    level: str = "info", fmt: Literal["auto", "console", "json"] = "auto"
) -> None:
    """Configure structlog and the stdlib root logger once, for the whole process."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: structlog.types.Processor = (
        # plain tracebacks: rich's default shows every frame's locals (passwords, tokens)
        structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        if use_console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        # filter_by_level first: a disabled level (debug on the hot path) costs one level check,
        # not a timestamp and the rest of the chain
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *([] if use_console else [structlog.processors.format_exc_info]),
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level, logging.ERROR))
    # pymodbus dumps raw frames at debug level; uvicorn's access log is noise at 1 Hz polling
    logging.getLogger("pymodbus").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # the ocpp library logs every frame in and out at info (two lines per MeterValues: the bulk of
    # the log at 100 charge points); its wire log is on only with level = "debug"
    logging.getLogger("ocpp").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
