"""Issue 17 "should fix": a busy port ends ``demo`` / ``run`` with a clear message and exit 2,
after stopping what was already started; ``demo.json`` is 0600 from the start.

The commands run in a child process, as a user runs them (they configure process-wide logging).
"""

from __future__ import annotations

import asyncio
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fuseguard.demo import run_demo, write_private
from tests.ports import free_port


@dataclass
class Result:
    exit_code: int
    output: str


def invoke(args: list[str]) -> Result:
    """``fuseguard ARGS`` in a child process: exit code and stdout + stderr."""
    done = subprocess.run(
        [sys.executable, "-c", "from fuseguard.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    return Result(done.returncode, done.stdout + done.stderr)


@pytest.fixture
def busy_port() -> Iterator[int]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield int(sock.getsockname()[1])
    sock.close()


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.parametrize(
    ("busy_option", "other_options"),
    [
        ("--modbus-port", ("--local-api-port", "--evse-api-port")),
        ("--evse-api-port", ("--local-api-port", "--modbus-port")),
    ],
)
def test_demo_with_a_busy_port_names_the_option_and_exits_2(
    tmp_path: Path, busy_port: int, busy_option: str, other_options: tuple[str, str]
) -> None:
    others = {opt: free_port() for opt in other_options}
    args = ["demo", "--headless", "--duration", "5", "--data-dir", str(tmp_path)]
    args += [busy_option, str(busy_port)]
    for opt, port in others.items():
        args += [opt, str(port)]
    result = invoke(args)
    assert result.exit_code == 2, result.output
    assert busy_option in result.output
    assert f"127.0.0.1:{busy_port}" in result.output
    assert "Traceback" not in result.output
    assert all(_bindable(port) for port in others.values())  # what had started is stopped


def test_run_with_a_busy_port_names_the_key_and_exits_2(tmp_path: Path, busy_port: int) -> None:
    config = tmp_path / "site.toml"
    config.write_text(
        f"""
data_dir = "{tmp_path / "data"}"
[site]
edge_id = "e1"
main_fuse_a = 35
[meter]
host = "127.0.0.1"
port = {free_port()}
[api.local]
port = 0
host = "127.0.0.1"
password = "a-long-enough-password"
[api.modbus]
port = {busy_port}
[api.evse]
port = 0
host = "127.0.0.1"
"""
    )
    result = invoke(["run", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "api.modbus.port" in result.output
    assert f"127.0.0.1:{busy_port}" in result.output


def test_write_private_creates_0600_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "demo.json"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, '{"password": "x"}')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == '{"password": "x"}'


async def test_demo_json_is_0600(tmp_path: Path) -> None:
    modes: list[int] = []

    def on_ready(_: dict[str, object]) -> None:
        modes.append(stat.S_IMODE((tmp_path / "demo.json").stat().st_mode))

    await asyncio.wait_for(
        run_demo(
            data_dir=tmp_path,
            local_api_port=0,
            modbus_port=0,
            evse_api_port=0,
            headless=True,
            duration_s=0.5,
            on_ready=on_ready,
        ),
        60,
    )
    assert modes == [0o600]
