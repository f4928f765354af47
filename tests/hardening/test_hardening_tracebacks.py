"""Issue 17 "should fix": console tracebacks never show local variables (secrets live there).

Runs in a child process: logging configuration is process-wide.
"""

from __future__ import annotations

import subprocess
import sys

_CHILD = """
import structlog
from fuseguard.logging import configure_logging
configure_logging("info", "console")
try:
    password = "hunter2-very-secret"
    raise RuntimeError("boom " + str(len(password)))
except RuntimeError:
    structlog.get_logger("t").exception("failed", device="test", reason="boom")
"""


def test_console_traceback_has_no_locals() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=60, check=True
    )
    assert "RuntimeError" in done.stderr
    assert "hunter2-very-secret" not in done.stderr
