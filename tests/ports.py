"""Loopback ports for servers that a test starts in another process or binds a moment later.

Binding port 0, reading the port and closing the socket is a race: until the server binds it,
the kernel may give the same port to another xdist worker's ``bind(0)`` or use it as the source
port of any outgoing connection (CI once measured one cloud replica twice that way). The ports
handed out here lie below the kernel's ephemeral range, which neither ``bind(0)`` nor outgoing
connections use, in a block of their own per xdist worker, each checked bindable first.
"""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterator
from pathlib import Path

BASE_PORT = 20000
BLOCK = 1000  # ports per worker: gw0 20000-20999 ... ("main", without xdist: the last block)
_WORKERS = 10


def _block_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        return int(worker[2:]) % _WORKERS
    return _WORKERS


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _candidates() -> Iterator[int]:
    first = BASE_PORT + _block_index() * BLOCK
    return itertools.cycle(range(first, first + BLOCK))


_NEXT = _candidates()


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port that is free now and that no other worker or connection will take."""
    if _ephemeral_low() < BASE_PORT + (_WORKERS + 1) * BLOCK:  # an unusual kernel setting
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    for _ in range(BLOCK):
        port = next(_NEXT)
        if _bindable(port, kind):
            return port
    raise RuntimeError(f"no free loopback port in this worker's block from {BASE_PORT}")
