"""Issue 17 "should fix": console tracebacks never show local variables (secrets live there)."""

from __future__ import annotations

import logging

import pytest
import structlog

from fuseguard.logging import configure_logging


def test_console_traceback_has_no_locals(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("info", "console")
    try:
        password = "hunter2-very-secret"
        raise RuntimeError("boom " + str(len(password)))
    except RuntimeError:
        structlog.get_logger("t").exception("failed", device="test", reason="boom")
    err = capsys.readouterr().err
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    assert "RuntimeError" in err
    assert "hunter2-very-secret" not in err
