"""The JSON log's direct route (round 15): fuseguard's own events skip stdlib logging, and the
lines are the ones the stdlib route wrote (same keys, same order, same JSON)."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import re
from typing import Any

import pytest
import structlog

from fuseguard.logging import configure_logging

_TIMESTAMP = re.compile(r'"timestamp": "[^"]+"')


def _lines(monkeypatch: pytest.MonkeyPatch, *, direct: bool) -> tuple[list[str], int]:
    """The JSON lines of a fixed set of events, and how many stdlib records ours made."""
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    configure_logging("info", "json", direct=direct)
    ours = []

    def count(record: logging.LogRecord) -> bool:
        if record.name.startswith("fuseguard."):
            ours.append(record)
        return True

    logging.getLogger().handlers[0].addFilter(count)
    log = structlog.get_logger("fuseguard.control.writer")
    log.info("setpoint", charger="cp7", setpoint_a=10, previous_a=None, reason="fuse: 3 A over")
    log.debug("not shown", charger="cp7")
    log.warning("bender request failed", device="bender@h:502", op="read 104+9", reason="x")
    try:
        raise ValueError("a driver bug")
    except ValueError:
        log.exception("read_crashed", charger="cp7")
    # in a copy of the context: structlog leaves an unbound variable at ``...`` in the context it
    # ran in, which later tests in this worker would inherit (the state walk refused it)
    contextvars.copy_context().run(_bound_line, log)
    logging.getLogger("aiohttp.client").warning("library %s", "line")
    text = _TIMESTAMP.sub('"timestamp": "T"', err.getvalue())
    return text.splitlines(), len(ours)


def _bound_line(log: Any) -> None:
    with structlog.contextvars.bound_contextvars(site="garage"):
        log.error("bound", amps=1.5)


def test_the_direct_route_writes_the_stdlib_routes_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    before, records_before = _lines(monkeypatch, direct=False)
    after, records_after = _lines(monkeypatch, direct=True)

    assert records_before == 4, "the stdlib route made one record per event of ours"
    assert records_after == 0, "the direct route makes no stdlib record for our events"
    assert after == before
    events = [json.loads(line) for line in after]
    assert [e["event"] for e in events] == [
        "setpoint",
        "bender request failed",
        "read_crashed",
        "bound",
        "library line",
    ]
    assert list(events[0]) == [
        "charger",
        "setpoint_a",
        "previous_a",
        "reason",
        "event",
        "level",
        "logger",
        "timestamp",
    ]
    assert events[0]["logger"] == "fuseguard.control.writer"
    assert events[0]["level"] == "info"
    assert "ValueError: a driver bug" in events[2]["exception"]
    assert events[2]["level"] == "error"
    assert events[3]["site"] == "garage"
    assert events[4]["logger"] == "aiohttp.client"


def test_the_direct_route_honours_the_level(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    configure_logging("warning", "json")
    log = structlog.get_logger("fuseguard.x")
    log.info("hidden")
    log.warning("shown")
    configure_logging("debug", "json")
    structlog.get_logger("fuseguard.y").debug("now shown")
    assert [json.loads(line)["event"] for line in err.getvalue().splitlines()] == [
        "shown",
        "now shown",
    ]
