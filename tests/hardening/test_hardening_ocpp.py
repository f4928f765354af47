"""Round 9 red team against the OCPP central system (``devices/ocpp/guard.py``).

Before: every bare TCP connect logged a ~1.9 KB error traceback (2 000 connects: 3.8 MB of log),
every refused handshake two unthrottled lines, a path that is no OCPP URL got 404 where an
unknown identity got 401, the ``ocpp`` library logged every frame at info, and connections in
their opening handshake had no cap.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
import sys
from pathlib import Path

from ocpp.v16 import call
from structlog.testing import capture_logs
from websockets.asyncio.client import connect

from fuseguard.api.tls import ensure_self_signed_cert
from fuseguard.devices.ocpp import OcppCentralSystem, Station, StationConfig
from fuseguard.devices.ocpp.server import server_ssl_context
from fuseguard.model.clock import RealClock
from tests.hardening.hardening_support import exchange
from tests.ocpp.conftest import PASSWORD, basic, central, charge_point, wait_for

BURST = 30


def _upgrade(path: str, user: str | None = None, password: str = "") -> bytes:
    head = (
        f"GET {path} HTTP/1.1\r\nHost: edge\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: ocpp1.6\r\n"
    )
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        head += f"Authorization: Basic {token}\r\n"
    return (head + "\r\n").encode()


def _without_date(answer: bytes) -> bytes:
    return b"\r\n".join(line for line in answer.split(b"\r\n") if not line.startswith(b"Date:"))


async def _bare_connect(port: int, data: bytes = b"") -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    if data:
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_bare_connects_and_garbage_log_one_line_per_burst_without_traceback() -> None:
    async with central() as site:
        port = site.server.port
        with capture_logs() as logs:
            for i in range(BURST):
                await _bare_connect(port, b"" if i % 2 else b"\x16\x03\x01garbage\r\n\r\n")
            await wait_for(lambda: site.server.websockets_log.handshake_failures >= BURST)
        failed = [e for e in logs if e["event"] == "ocpp_handshake_failed"]
        assert len(failed) == 1
        assert failed[0]["log_level"] == "info"
        assert failed[0]["reason"].startswith("InvalidMessage: did not receive a valid HTTP")
        assert len(failed[0]["reason"]) <= 200
        assert "exc_info" not in failed[0]


async def test_every_refusal_is_the_same_401_and_logs_once_per_burst() -> None:
    async with central() as site:
        port = site.server.port
        with capture_logs() as logs:
            for _ in range(BURST):
                await exchange(port, _upgrade("/ocpp/CP1", "CP1", "wrong"), read_s=5.0)
        refused = [e for e in logs if e["event"] == "ocpp_handshake_refused"]
        assert len(refused) == 1
        assert refused[0]["reason"] == "wrong credentials"
        answers = {
            "unknown identity": await exchange(
                port, _upgrade("/ocpp/CP9", "CP9", PASSWORD), read_s=5.0
            ),
            "no credentials": await exchange(port, _upgrade("/ocpp/CP1"), read_s=5.0),
            "wrong password": await exchange(
                port, _upgrade("/ocpp/CP1", "CP1", "wrong"), read_s=5.0
            ),
            "not an OCPP path": await exchange(
                port, _upgrade("/a/b/c", "CP1", PASSWORD), read_s=5.0
            ),
            "identity too long": await exchange(port, _upgrade("/ocpp/" + "C" * 49), read_s=5.0),
        }
        first = _without_date(answers["unknown identity"])
        assert first.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
        assert b'WWW-Authenticate: Basic realm="fuseguard OCPP"' in first
        for answer in answers.values():
            assert _without_date(answer) == first  # nothing tells a known identity apart
        assert site.server.refused == len(answers) + BURST
        assert site.station.session is None


async def test_connections_in_the_handshake_are_capped_and_a_charge_point_still_gets_in() -> None:
    async with central(max_pending_connections=4) as site:
        port = site.server.port
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(40)]
        try:
            assert site.server._server is not None
            handlers = site.server._server.handlers
            await wait_for(lambda: len(handlers) <= 5)
            assert site.server.pending_cap.evicted >= 35
            # the silent peers are the oldest: a charge point that sends its request gets in
            async with charge_point(site.url()):
                await wait_for(site.station.ready.is_set)
        finally:
            for _, writer in held:
                writer.close()


async def test_over_tls_the_cap_counts_tls_handshakes_and_a_charge_point_still_gets_in(
    tmp_path: Path,
) -> None:
    # before: asyncio ran the TLS handshake (a 256 KiB buffer each) before any cap; 3 000 bare
    # connects to wss:// took the server from 39 to 678 MB of RSS
    cert, key = ensure_self_signed_cert(tmp_path, ["127.0.0.1"])
    station = Station(StationConfig(identity="CP1", password=PASSWORD), RealClock())
    server = OcppCentralSystem(
        {"CP1": station},
        host="127.0.0.1",
        port=0,
        ssl_context=server_ssl_context(cert, key),
        max_pending_connections=4,
    )
    await server.start()
    held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(40)]
    try:
        assert server._server is not None
        handlers = server._server.handlers
        await wait_for(lambda: len(handlers) <= 5)
        assert server.pending_cap.evicted >= 35
        client_tls = ssl.create_default_context(cafile=str(cert))
        headers = {"Authorization": basic("CP1", PASSWORD)}
        async with connect(
            f"{server.url}/CP1",
            ssl=client_tls,
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers=headers,
        ) as ws:
            assert ws.subprotocol == "ocpp1.6"
            await wait_for(lambda: station.session is not None)
    finally:
        for _, writer in held:
            writer.close()
        await server.close()


async def test_an_oversized_handshake_request_is_dropped_unanswered() -> None:
    # before: websockets accepted 128 headers of 8 KiB each (~1 MB held per pending connection:
    # 400 such connections took the server from 38 to 490 MB of RSS)
    async with central() as site:
        filler = "".join(f"X-Filler-{i}: {'a' * 8000}\r\n" for i in range(8))
        raw = _upgrade("/ocpp/CP1", "CP1", PASSWORD).replace(b"\r\n\r\n", b"\r\n", 1)
        with capture_logs() as logs:
            for _ in range(3):
                answer = await exchange(
                    site.server.port, raw + filler.encode() + b"\r\n", read_s=5.0
                )
                assert answer == b""  # closed, no HTTP answer
        assert site.server.pending_cap.oversized_requests == 3
        assert len([e for e in logs if e["event"] == "ocpp_request_too_large"]) == 1
        assert site.station.session is None
        async with charge_point(site.url()):  # an ordinary request still gets in
            await wait_for(site.station.ready.is_set)


async def test_a_silent_peer_is_closed_after_the_open_timeout() -> None:
    async with central(open_timeout_s=0.2) as site:
        reader, writer = await asyncio.open_connection("127.0.0.1", site.server.port)
        try:
            async with asyncio.timeout(10.0):  # generous: the server closes it after 0.2 s
                assert await reader.read(1) == b""
        finally:
            writer.close()


_CHILD = """
import asyncio, sys
from ocpp.v16 import ChargePoint, call
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from fuseguard.logging import configure_logging
from ocpp.v16 import call

from tests.ocpp.conftest import central, basic, PASSWORD

configure_logging(sys.argv[1], "json")

async def main() -> None:
    async with central() as site:
        for _ in range(200):
            _, writer = await asyncio.open_connection("127.0.0.1", site.server.port)
            writer.close()
        for _ in range(20):  # refused: wrong password
            bad = {"Authorization": basic("CP1", "wrong")}
            try:
                async with connect(site.url(), subprotocols=["ocpp1.6"], additional_headers=bad):
                    pass
            except InvalidStatus:
                pass
        headers = {"Authorization": basic("CP1", PASSWORD)}
        async with connect(site.url(), subprotocols=["ocpp1.6"], additional_headers=headers) as ws:
            cp = ChargePoint("CP1", ws, response_timeout=5)  # the library's own logger
            task = asyncio.create_task(cp.start())
            for _ in range(5):
                await cp.call(call.Heartbeat())
            task.cancel()
        await asyncio.sleep(0.2)

asyncio.run(main())
"""


def _child_log(level: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, level],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]


def test_a_connect_flood_and_the_wire_log_stay_out_of_an_info_log() -> None:
    # before: 200 bare connects wrote ~380 KB (one error traceback each), each refusal two lines,
    # and each frame one line
    lines = _child_log("info")
    text = "\n".join(json.dumps(line) for line in lines)
    assert len(text) < 4000
    assert not [line for line in lines if line["level"] == "error"]
    assert not [line for line in lines if str(line.get("logger", "")).startswith("ocpp")]
    assert sum(1 for line in lines if line["event"] == "ocpp_handshake_failed") == 1
    assert sum(1 for line in lines if line["event"] == "ocpp_handshake_refused") == 1
    assert not [line for line in lines if str(line["event"]).startswith("connection rejected")]


def test_level_debug_turns_the_ocpp_wire_log_on() -> None:
    lines = _child_log("debug")

    def heartbeats(logger: str) -> int:
        return sum(
            1
            for line in lines
            if line.get("logger") == logger and "Heartbeat" in str(line["event"])
        )

    assert heartbeats("ocpp") == 5  # the library's client sends five
    assert heartbeats("ocpp.central_system") == 5  # the central system receives them


async def test_answers_nobody_asked_for_are_dropped_and_logged_once_per_burst() -> None:
    # before: each went into the ocpp library's unbounded queue and stayed there (memory grew
    # with every frame of an authenticated charge point)
    async with central() as site, charge_point(site.url()) as (cp, ws):
        await wait_for(site.station.ready.is_set)
        session = site.station.session
        assert session is not None
        with capture_logs() as logs:
            for i in range(200):
                await ws.send(json.dumps([3, f"stray-{i}", {}]))
                await ws.send(json.dumps([4, f"stray-e{i}", "GenericError", "", {}]))
            await wait_for(lambda: session.stray_answers >= 400)
        assert session._response_queue.qsize() == 0
        stray = [e for e in logs if e["event"] == "ocpp_stray_answer"]
        assert len(stray) == 1
        assert stray[0]["unique_id"] == "stray-0"
        # the session still works both ways
        assert (await cp.call(call.Heartbeat())).current_time.endswith("Z")
        await site.connectors[0].set_current_limit(13)  # a call to the charge point, answered
        assert cp.leases()[-1]["charging_schedule"]["charging_schedule_period"][0]["limit"] == 13


async def test_call_errors_are_all_answered_and_logged_once_per_burst() -> None:
    async with central() as site, charge_point(site.url()) as (_cp, ws):
        await wait_for(site.station.ready.is_set)
        session = site.station.session
        assert session is not None
        before = session.call_errors_sent
        with capture_logs() as logs:
            for _ in range(BURST):
                await ws.send("this is not json")
            await wait_for(lambda: session.call_errors_sent >= before + BURST)
        assert len([e for e in logs if e["event"] == "ocpp_call_error"]) == 1
