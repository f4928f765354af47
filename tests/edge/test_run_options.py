"""``fuseguard run`` options of round 14: the event loop and the stop-signal restore."""

from __future__ import annotations

import signal
from pathlib import Path

from typer.testing import CliRunner

from fuseguard.cli import app, stop_on_signals


def test_an_unknown_loop_is_refused_before_anything_starts(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["run", "--config", str(tmp_path / "x.toml"), "--loop", "tokio"]
    )
    assert result.exit_code == 2
    assert "--loop must be auto, uvloop or asyncio" in result.output


def test_ignored_stop_signals_are_restored_and_handled_ones_kept() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        assert stop_on_signals() == ["SIGINT", "SIGTERM"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        assert stop_on_signals() == []  # Python's handler and the default stay as they are

        def mine(*_: object) -> None:
            return None

        signal.signal(signal.SIGINT, mine)
        assert stop_on_signals() == []
        assert signal.getsignal(signal.SIGINT) is mine  # somebody's own handler is theirs
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])
