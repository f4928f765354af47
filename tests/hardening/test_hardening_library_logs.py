"""Round 9 red team: a peer can make pymodbus warn once per malformed frame it sends (about
360 bytes of log per frame on the Modbus twin); the process's log handler lets one such line
through per burst, cut short, with the count of the suppressed ones."""

from __future__ import annotations

import io
import logging

import pytest

from fuseguard.logging import RepeatFilter, configure_logging


def _record(name: str, msg: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, None, None)


def test_one_line_per_burst_cut_short_with_the_suppressed_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr("fuseguard.logging.time.monotonic", lambda: now[0])
    f = RepeatFilter("pymodbus", interval_s=10.0, max_chars=50)
    first = _record("pymodbus.logging", "Invalid Modbus protocol id: 5 " + "0x0 " * 200)
    assert f.filter(first)
    assert first.getMessage().endswith("...(830 chars)") and len(first.getMessage()) < 80
    assert not any(f.filter(_record("pymodbus.logging", "again")) for _ in range(500))
    assert f.filter(_record("fuseguard.api.modbus", "ours")) and f.filter(_record("pymodbusx", "x"))
    now[0] += 10.0
    later = _record("pymodbus", "Unable to decode frame")
    assert f.filter(later)
    assert later.getMessage() == "Unable to decode frame (500 more suppressed)"


def test_the_process_log_handler_throttles_pymodbus(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    configure_logging("info", "json")
    for _ in range(200):
        logging.getLogger("pymodbus.logging").warning("Unable to decode frame %s", "0x0 " * 100)
    logging.getLogger("fuseguard.test").warning("ours")
    lines = err.getvalue().splitlines()
    assert sum("pymodbus" in line for line in lines) == 1
    assert any('"ours"' in line for line in lines)
    assert len(err.getvalue()) < 1500
