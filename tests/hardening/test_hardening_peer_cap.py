"""Round 11: one peer can never take every connection slot, nor hide another peer's log lines.

Before, a server had one cap for all peers (64 HTTP, 16 Modbus): one LAN peer holding that many
connections open (idle, slow, or bare TLS connects without a ClientHello) locked the EMS out,
and one log throttle per server meant that peer's connect loop kept the throttle busy, so the
first refusal of a second peer was never logged. Now each peer (host) holds at most
``max_connections_per_peer`` (``serving/peers.py``) and refusals are throttled per reason and
peer (``KeyedLogThrottle``). Peers are 127.0.0.1 and 127.0.0.2 (Linux: all of 127/8 is local).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from pathlib import Path

from structlog.testing import capture_logs

from fuseguard.api.local import create_local_app
from fuseguard.api.modbus import serve_modbus_twin
from fuseguard.api.tls import ensure_self_signed_cert
from fuseguard.serving import ServerLimits, serve_app
from fuseguard.serving.peers import PeerConnections, host_key
from fuseguard.serving.throttle import KeyedLogThrottle
from tests.hardening.hardening_support import AUTH_HEADER, PASSWORD, USER, StaticLiveData, make_flex
from tests.hardening.test_hardening_ocpp import _upgrade
from tests.ocpp.conftest import central, wait_for

PEER_A = "127.0.0.1"
PEER_B = "127.0.0.2"
PER_PEER = 3
CONNECTS = 20
#: long deadlines: a connection closed within a test's read deadline was refused, not timed out
LIMITS = ServerLimits(max_connections_per_peer=PER_PEER, header_timeout_s=60.0)

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _connect(port: int, peer: str, tls: ssl.SSLContext | None = None) -> Stream:
    return await asyncio.open_connection(
        "127.0.0.1",
        port,
        local_addr=(peer, 0),
        ssl=tls,
        server_hostname="localhost" if tls else None,
    )


async def _refused(port: int, peer: str) -> bool:
    """True when the server closes a new connection from ``peer`` at once."""
    reader, writer = await _connect(port, peer)
    try:
        return await asyncio.wait_for(reader.read(1), 5.0) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    finally:
        writer.close()


async def _live_data(port: int, peer: str, tls: ssl.SSLContext | None = None) -> bytes:
    reader, writer = await _connect(port, peer, tls)
    head = f"GET /v1/live/data HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH_HEADER}\r\n\r\n"
    writer.write(head.encode())
    line = await asyncio.wait_for(reader.readline(), 10.0)
    writer.close()
    return line


def _close(streams: list[Stream]) -> None:
    for _, writer in streams:
        writer.close()


def test_keyed_throttle_has_one_burst_per_reason_and_peer() -> None:
    now = [0.0]
    throttle = KeyedLogThrottle(interval_s=10.0, clock=lambda: now[0])
    assert throttle.admit("cap", "10.0.0.1") == 0
    assert [throttle.admit("cap", "10.0.0.1") for _ in range(50)] == [None] * 50
    assert throttle.admit("cap", "10.0.0.2") == 0  # another peer: not hidden by the flood
    assert throttle.admit("allow-list", "10.0.0.1") == 0  # another reason: its own burst
    now[0] = 10.0
    assert throttle.admit("cap", "10.0.0.1") == 50


def test_keyed_throttle_forgets_the_oldest_key_and_keeps_its_count() -> None:
    throttle = KeyedLogThrottle(interval_s=10.0, clock=lambda: 0.0, max_keys=4)
    throttle.admit("cap", "10.0.0.0")
    for _ in range(7):
        throttle.admit("cap", "10.0.0.0")  # 7 suppressed
    for i in range(1, 300):
        throttle.admit("cap", f"10.0.{i // 256}.{i % 256}")
    assert len(throttle) == 4  # bounded whatever the number of peers

    class _Logger:
        def __init__(self) -> None:
            self.lines: list[dict[str, object]] = []

        def warning(self, event: str, **fields: object) -> None:
            self.lines.append({"event": event, **fields})

    logger = _Logger()
    throttle.warning(logger, "refused", reason="cap", host="10.9.9.9", device="x")
    assert logger.lines == [
        {"event": "refused", "reason": "cap", "suppressed": 0, "suppressed_forgotten": 7,
         "device": "x"}
    ]  # fmt: skip


def test_peer_connections_count_per_host() -> None:
    peers = PeerConnections(2)
    assert peers.try_open("10.0.0.1")
    assert peers.try_open("::ffff:10.0.0.1")  # IPv4-mapped: the same peer
    assert not peers.try_open("10.0.0.1")
    assert peers.try_open("10.0.0.2")
    peers.release("10.0.0.1")
    assert peers.count("10.0.0.1") == 1
    peers.release("10.0.0.1")
    assert peers.peers == 1  # a peer without connections is not remembered
    assert host_key("::ffff:192.168.1.5") == "192.168.1.5"


def test_servers_without_a_per_peer_cap_keep_their_one_cap() -> None:
    # the cloud (behind a proxy: one address for every client) and the simulators set none
    assert ServerLimits().per_peer == 64
    assert ServerLimits(max_connections=512).per_peer == 512
    assert ServerLimits(max_connections_per_peer=100).per_peer == 64  # never above the cap
    assert LIMITS.per_peer == PER_PEER


async def test_http_peer_over_its_cap_is_refused_while_another_peer_is_served() -> None:
    app = create_local_app(make_flex(), StaticLiveData(), user=USER, password=PASSWORD)
    handle = await serve_app(app, "127.0.0.1", 0, limits=LIMITS)
    held = [await _connect(handle.port, PEER_A) for _ in range(PER_PEER)]
    try:
        await asyncio.sleep(0.1)
        with capture_logs() as logs:
            for _ in range(CONNECTS):
                assert await _refused(handle.port, PEER_A)
            assert (await _live_data(handle.port, PEER_B)).startswith(b"HTTP/1.1 200")
            held_b = [await _connect(handle.port, PEER_B) for _ in range(PER_PEER)]
            await asyncio.sleep(0.1)
            assert await _refused(handle.port, PEER_B)
            _close(held_b)
        refused = [e for e in logs if e["event"] == "http_connection_refused"]
        # one line per peer: A's flood of 20 did not hide B's first refusal
        assert [e["device"].split(":")[0] for e in refused] == [PEER_A, PEER_B]
        assert refused[0]["reason"] == f"more than {PER_PEER} connections from this peer"
        _close(held)
        await asyncio.sleep(0.2)
        assert (await _live_data(handle.port, PEER_A)).startswith(b"HTTP/1.1 200")  # released
    finally:
        _close(held)
        await handle.close()


async def test_tls_handshakes_count_against_the_peer(tmp_path: Path) -> None:
    cert, key = ensure_self_signed_cert(tmp_path, [])
    app = create_local_app(make_flex(), StaticLiveData(), user=USER, password=PASSWORD)
    handle = await serve_app(app, "127.0.0.1", 0, str(cert), str(key), limits=LIMITS)
    context = ssl.create_default_context(cafile=str(cert))
    # bare TCP connects that never send a ClientHello: handshakes in progress
    held = [await _connect(handle.port, PEER_A) for _ in range(PER_PEER)]
    try:
        await asyncio.sleep(0.1)
        with capture_logs() as logs:
            assert await _refused(handle.port, PEER_A)
        assert logs[-1]["reason"].startswith(f"more than {PER_PEER} connections from this peer")
        line = await _live_data(handle.port, PEER_B, context)
        assert line.startswith(b"HTTP/1.1 200")
        _close(held)
        await asyncio.sleep(0.2)  # the abandoned handshakes end: A's slots are free again
        assert (await _live_data(handle.port, PEER_A, context)).startswith(b"HTTP/1.1 200")
    finally:
        _close(held)
        await handle.close()


def _read_request(transaction: int) -> bytes:
    # MBAP (transaction, protocol 0, length 6, unit 1), FC 3, 19000, two registers
    return struct.pack(">HHHBBHH", transaction, 0, 6, 1, 3, 19000, 2)


async def _modbus_read(port: int, peer: str) -> bytes:
    reader, writer = await _connect(port, peer)
    writer.write(_read_request(7))
    answer = await asyncio.wait_for(reader.readexactly(13), 5.0)
    writer.close()
    return answer


async def test_modbus_peer_over_its_cap_is_refused_while_another_peer_reads() -> None:
    twin = await serve_modbus_twin(
        make_flex(), StaticLiveData(), "127.0.0.1", 0, max_connections_per_peer=PER_PEER
    )
    held = [await _connect(twin.port, PEER_A) for _ in range(PER_PEER)]
    try:
        await asyncio.sleep(0.1)
        with capture_logs() as logs:
            for _ in range(CONNECTS):
                assert await _refused(twin.port, PEER_A)
            answer = await _modbus_read(twin.port, PEER_B)
        assert answer[:2] == struct.pack(">H", 7) and answer[7] == 3  # FC 3 answered
        assert struct.unpack(">f", answer[9:13]) == (230.0,)  # voltage L1
        refused = [e for e in logs if e["event"] == "modbus_peer_refused"]
        assert len(refused) == 1
        assert refused[0]["reason"] == f"more than {PER_PEER} connections from this peer"
        assert refused[0]["peer"].startswith(f"{PEER_A}:")
    finally:
        _close(held)
        await twin.close()


async def _ocpp_exchange(port: int, peer: str, raw: bytes) -> None:
    reader, writer = await _connect(port, peer)
    writer.write(raw)
    await writer.drain()
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        await asyncio.wait_for(reader.read(65536), 5.0)
    writer.close()


async def test_ocpp_refusals_and_failed_handshakes_log_once_per_burst_and_peer() -> None:
    async with central() as site:
        port = site.server.port
        wrong = _upgrade("/ocpp/CP1", "CP1", "wrong")
        with capture_logs() as logs:
            for _ in range(CONNECTS):
                await _ocpp_exchange(port, PEER_A, wrong)
                await _ocpp_exchange(port, PEER_A, b"garbage\r\n\r\n")
            await _ocpp_exchange(port, PEER_B, wrong)
            await _ocpp_exchange(port, PEER_B, b"garbage\r\n\r\n")
            await wait_for(lambda: site.server.websockets_log.handshake_failures >= CONNECTS + 1)
        refused = [e["peer"] for e in logs if e["event"] == "ocpp_handshake_refused"]
        failed = [e["peer"] for e in logs if e["event"] == "ocpp_handshake_failed"]
        assert refused == [PEER_A, PEER_B]  # A's 20 refusals did not hide B's first
        assert failed == [PEER_A, PEER_B]
