"""Structured logging: structlog; console on a terminal, JSON otherwise.

uvicorn, aiohttp, pymodbus and SQLAlchemy log through stdlib and get the same format.

JSON (production, a service's log file): fuseguard's own events are rendered by structlog and
written straight to the stream (:class:`JsonLineLogger`), one line each, with the level filter
bound into the logger class (a disabled level costs one method call). Round 14 found the stdlib
route (a ``LogRecord`` per event, the handler, ``ProcessorFormatter``) to be ~10 % of the
edge's CPU at 100 chargers, nearly all of it in the per-change ``setpoint`` line. The line is
the same as before: the same processors in the same order, the same keys, the same JSON.
Library (stdlib) records still go through the handler and its formatter. The console format
keeps the stdlib route for everything (a terminal, not a hot path).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Literal, TextIO

import structlog

from fuseguard.serving.throttle import LogThrottle

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def configure_logging(
    level: str = "info", fmt: Literal["auto", "console", "json"] = "auto", *, direct: bool = True
) -> None:
    """Configure structlog and the stdlib root logger once, for the whole process.

    ``direct=False`` sends JSON events through stdlib logging too, as before round 15 (the
    same lines, slower: kept to compare the two routes).
    """
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
    if use_console or not direct:
        structlog.configure(
            # filter_by_level first: a disabled level (debug on the hot path) costs one level
            # check, not a timestamp and the rest of the chain
            processors=[
                structlog.stdlib.filter_by_level,
                *shared,
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=True,
        )
    else:
        structlog.configure(
            # the formatter's chain below, run by structlog itself (module docstring)
            processors=[*shared, structlog.processors.format_exc_info, renderer],
            logger_factory=JsonLineLoggerFactory(sys.stderr),
            wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.ERROR)),
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
    # ... and warns once per malformed frame a peer sends (a frame loop wrote ~360 bytes of log
    # per frame, from the logger "pymodbus.logging"): one line per burst, cut short
    handler.addFilter(RepeatFilter("pymodbus"))
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # the ocpp library logs every frame in and out at info (two lines per MeterValues: the bulk of
    # the log at 100 charge points); its wire log is on only with level = "debug"
    logging.getLogger("ocpp").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)


class JsonLineLogger(structlog.WriteLogger):
    """A structlog logger that writes each rendered line to ``file`` (with its own lock, one
    ``write`` per line, as the stdlib handler does) and has the ``name`` that structlog's
    ``add_logger_name`` reads (the module that asked for it)."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class JsonLineLoggerFactory:
    """``structlog.get_logger(name)`` -> a :class:`JsonLineLogger` on ``file`` named ``name``."""

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> JsonLineLogger:
        return JsonLineLogger(self._file, str(args[0]) if args else "")


class RepeatFilter(logging.Filter):
    """At most one record per ``interval_s`` from the loggers under ``name`` (a library a peer
    can make repeat itself at will: pymodbus warns once per malformed frame), its message cut to
    ``max_chars`` and followed by how many were suppressed before it; other records pass.
    The pacing is :class:`~fuseguard.serving.throttle.LogThrottle`'s, as for our own lines."""

    def __init__(self, name: str, interval_s: float = 10.0, max_chars: int = 300) -> None:
        super().__init__()
        self.prefix = name
        self.max_chars = max_chars
        self._throttle = LogThrottle(interval_s, clock=time.monotonic)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != self.prefix and not record.name.startswith(self.prefix + "."):
            return True
        suppressed = self._throttle.admit()
        if suppressed is None:
            return False
        message = record.getMessage()
        if len(message) > self.max_chars:
            message = f"{message[: self.max_chars]}...({len(message)} chars)"
        if suppressed:
            message = f"{message} ({suppressed} more suppressed)"
        record.msg, record.args = message, None
        return True


#: at most this many characters of a client's id (a path segment) go into a log line
LOGGED_ID_CHARS = 64


def clip_id(value: str) -> str:
    """``value`` for a log line or an error message: at most :data:`LOGGED_ID_CHARS` characters.

    An unauthenticated request's path ids went into the log whole: a flood of 7 000-character ids
    with a wrong token wrote 61 MB of log in 10 s against the demo.
    """
    if len(value) <= LOGGED_ID_CHARS:
        return value
    return f"{value[:LOGGED_ID_CHARS]}...({len(value)} chars)"
