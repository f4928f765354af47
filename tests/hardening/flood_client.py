"""A LAN attacker in a separate process: slow, large and bogus requests against one edge.

Usage: ``python flood_client.py SECONDS HTTP_PORT [HTTP_PORT ...] --modbus PORT``. Prints one JSON
line of counts when done. Blocking sockets in threads: the attacker does not share the edge's
event loop or its interpreter.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections import Counter

counts: Counter[str] = Counter()
lock = threading.Lock()


def count(what: str) -> None:
    with lock:
        counts[what] += 1


def connect(port: int) -> socket.socket | None:
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=2.0)
    except OSError:
        count("connect_failed")
        return None


def slowloris(port: int, end: float) -> None:
    """Half-sent request heads, one byte every 0.2 s, reconnecting when closed."""
    while time.monotonic() < end:
        sock = connect(port)
        if sock is None:
            time.sleep(0.1)
            continue
        try:
            sock.sendall(b"POST /v1/keep-alive HTTP/1.1\r\nHost: x\r\n")
            while time.monotonic() < end:
                sock.sendall(b"X")
                time.sleep(0.2)
        except OSError:
            count("slow_closed_by_server")
        finally:
            sock.close()


def big_body(port: int, end: float) -> None:
    """Announce 80 MB and push 1 MB blocks until the server stops taking them."""
    block = b"{" * (1 << 20)
    while time.monotonic() < end:
        sock = connect(port)
        if sock is None:
            time.sleep(0.1)
            continue
        sent = 0
        try:
            sock.sendall(
                b"POST /v1/flex_management/setting HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 80000000\r\n\r\n"
            )
            while time.monotonic() < end and sent < 80_000_000:
                sock.sendall(block)
                sent += len(block)
        except OSError:
            pass
        finally:
            sock.close()
        time.sleep(0.02)
        with lock:
            counts["big_bytes_sent"] += sent
            counts["big_requests"] += 1


def bogus(port: int, end: float) -> None:
    """Bad JSON without credentials, as fast as answers come."""
    body = b"{not json" * 100
    while time.monotonic() < end:
        sock = connect(port)
        if sock is None:
            time.sleep(0.1)
            continue
        try:
            sock.sendall(
                b"POST /v1/flex_management/setting HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            answer = sock.recv(64)
            count(f"bogus_{answer[9:12].decode(errors='replace') or 'closed'}")
        except OSError:
            count("bogus_error")
        finally:
            sock.close()
        time.sleep(0.005)


def modbus_idle(port: int, end: float) -> None:
    """Hold a Modbus connection open doing nothing."""
    while time.monotonic() < end:
        sock = connect(port)
        if sock is None:
            time.sleep(0.1)
            continue
        try:
            sock.settimeout(max(0.1, end - time.monotonic()))
            if sock.recv(1) == b"":
                count("modbus_closed_by_server")
        except OSError:
            pass
        finally:
            sock.close()
        time.sleep(0.05)


def main() -> None:
    seconds = float(sys.argv[1])
    args = sys.argv[2:]
    modbus = int(args[args.index("--modbus") + 1])
    http_ports = [int(p) for p in args[: args.index("--modbus")]]
    end = time.monotonic() + seconds
    threads = []
    for port in http_ports:
        threads += [threading.Thread(target=slowloris, args=(port, end)) for _ in range(40)]
        threads += [threading.Thread(target=big_body, args=(port, end)) for _ in range(4)]
        threads += [threading.Thread(target=bogus, args=(port, end)) for _ in range(4)]
    threads += [threading.Thread(target=modbus_idle, args=(modbus, end)) for _ in range(30)]
    for t in threads:
        t.daemon = True
        t.start()
    for t in threads:
        t.join(timeout=seconds + 5)
    print(json.dumps(dict(counts)), flush=True)


if __name__ == "__main__":
    main()
