"""``fuseguard run`` stops on SIGINT even when it inherited SIGINT ignored (round 14).

A command started in the background by a shell without job control (a script's ``cmd &``, a CI
step, a test runner's worker: ``/proc/<pid>/status`` of the edges other suites started on the
benchmark machine showed ``SigIgn`` with SIGINT and SIGQUIT) inherits SIGINT *ignored*. Python
keeps it ignored and asyncio's runner hooks SIGINT only when it has Python's default handler,
so ``kill -INT`` did nothing: the edge logged nothing after the signal and ran until it was
killed (the benchmark's "did not stop within 10 s of SIGINT", rounds 2 and 13). This test
starts the edge exactly so; it fails without :func:`fuseguard.cli.stop_on_signals`.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from tests.edge.test_edge_shutdown import (
    _toml,
    _virtual_site,
    _wait_for_line,
    signal_and_wait,
    start_edge,
)


def _ignore_sigint() -> None:
    """In the child before exec: what ``cmd &`` does in a shell without job control."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)


@pytest.mark.skipif(sys.platform != "linux", reason="/proc and POSIX signal inheritance")
async def test_fuseguard_run_stops_on_sigint_it_inherited_ignored(tmp_path: Path) -> None:
    async with _virtual_site(benders=2) as (meter_port, ports, _connectors):
        config = tmp_path / "site.toml"
        config.write_text(_toml(tmp_path / "data", meter_port, ports))
        log_path = tmp_path / "edge.log"
        proc = await start_edge(config, log_path, preexec_fn=_ignore_sigint)
        try:
            started = await _wait_for_line(proc, log_path, '"edge_started"', 60.0)
            assert started, f"the edge did not start: {log_path.read_text()[-3000:]}"
            text = await signal_and_wait(proc, log_path, signal.SIGINT)
            assert '"stop_signals_restored"' in text, "the inherited disposition was not seen"
            assert '"edge_stopping"' in text, text[-3000:]
            assert '"edge_stop_overrun"' not in text, text[-3000:]
            assert proc.returncode in (0, 130, -signal.SIGINT), (proc.returncode, text[-3000:])
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
