"""Round 9 red team: a connect loop is one log line per burst, not one per connect.

Before, every refused connect (Modbus peer outside ``allowed_hosts`` or over the cap, HTTP over
the cap) logged a warning: ~3 000 lines in 20 s from one unauthenticated LAN peer, rendered in the
event loop that runs control (``serving/throttle.py``); so did every EVSE API request with a wrong
token, with the path's ids whole.
"""

from __future__ import annotations

import asyncio

import httpx2
from structlog.testing import capture_logs

from fuseguard.api.evse import create_evse_app
from fuseguard.api.local import create_local_app
from fuseguard.api.modbus import serve_modbus_twin
from fuseguard.serving import ServerLimits, serve_app
from fuseguard.serving.throttle import LogThrottle
from tests.hardening.hardening_support import PASSWORD, USER, StaticLiveData, make_flex

CONNECTS = 30


async def _connect_and_wait_close(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert await asyncio.wait_for(reader.read(1), 5.0) == b""  # refused: closed by the server
    except ConnectionResetError:
        pass
    finally:
        writer.close()


def test_throttle_lets_one_line_per_interval_through_with_the_count() -> None:
    now = [0.0]
    throttle = LogThrottle(interval_s=10.0, clock=lambda: now[0])
    assert throttle.admit() == 0
    assert [throttle.admit() for _ in range(5)] == [None] * 5
    now[0] = 9.9
    assert throttle.admit() is None
    now[0] = 10.0
    assert throttle.admit() == 6  # the six suppressed since the first line
    now[0] = 25.0
    assert throttle.admit() == 0


async def test_modbus_peer_outside_allowed_hosts_logs_once_per_burst() -> None:
    twin = await serve_modbus_twin(
        make_flex(), StaticLiveData(), "127.0.0.1", 0, allowed_hosts=["10.99.0.0/16"]
    )
    try:
        with capture_logs() as logs:
            for _ in range(CONNECTS):
                await _connect_and_wait_close(twin.port)
        refused = [e for e in logs if e["event"] == "modbus_peer_refused"]
        assert len(refused) == 1
        assert refused[0]["peer"].startswith("127.0.0.1:")
        assert refused[0]["reason"] == "peer not in allowed_hosts"
    finally:
        await twin.close()


async def test_modbus_connections_over_the_cap_log_once_per_burst() -> None:
    twin = await serve_modbus_twin(make_flex(), StaticLiveData(), "127.0.0.1", 0, max_connections=2)
    held = [await asyncio.open_connection("127.0.0.1", twin.port) for _ in range(2)]
    try:
        await asyncio.sleep(0.1)
        with capture_logs() as logs:
            for _ in range(CONNECTS):
                await _connect_and_wait_close(twin.port)
        refused = [e for e in logs if e["event"] == "modbus_peer_refused"]
        assert len(refused) == 1
        assert refused[0]["reason"] == "more than 2 connections"
    finally:
        for _, w in held:
            w.close()
        await twin.close()


async def test_http_connections_over_the_cap_log_once_per_burst() -> None:
    app = create_local_app(make_flex(), StaticLiveData(), user=USER, password=PASSWORD)
    limits = ServerLimits(max_connections=2, header_timeout_s=30.0)
    handle = await serve_app(app, "127.0.0.1", 0, limits=limits)
    held = [await asyncio.open_connection("127.0.0.1", handle.port) for _ in range(2)]
    try:
        await asyncio.sleep(0.1)
        with capture_logs() as logs:
            for _ in range(CONNECTS):
                await _connect_and_wait_close(handle.port)
        refused = [e for e in logs if e["event"] == "http_connection_refused"]
        assert len(refused) == 1
    finally:
        for _, w in held:
            w.close()
        await handle.close()


class _NoEvse:
    async def evse(self, edge_device_id: str, evse_uuid: str) -> None:
        return None


class _Tokens:
    """``good`` is the token of every EVSE, ``other`` a token of another EVSE."""

    async def check(self, edge_device_id: str, evse_uuid: str, token: str | None) -> str:
        if not token:
            return "missing"
        return {"good": "ok", "other": "wrong_evse"}.get(token, "invalid")


async def test_evse_api_bad_tokens_log_once_per_burst_with_clipped_ids() -> None:
    # before: one line per request with the path's ids whole (61 MB of log in 10 s on the demo)
    app = create_evse_app(_NoEvse(), _Tokens())  # type: ignore[arg-type]
    long_id = "e" * 7000
    path = f"/edgedevices/{long_id}/evses/{long_id}/status"
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://e") as client:
        with capture_logs() as logs:
            codes = [
                (await client.get(path, headers={"evsetoken": "guess"})).status_code
                for _ in range(CONNECTS)
            ]
            misuse = await client.get(path, headers={"evsetoken": "other"})
            unknown = await client.get(path, headers={"evsetoken": "good"})
    assert set(codes) == {401}  # the answer is unchanged, only the log is bounded
    assert misuse.status_code == 403
    assert unknown.status_code == 404
    assert len(unknown.json()["message"]) < 300
    failed = [e for e in logs if e["event"] == "evse_api_auth_failed"]
    # one line for the burst of wrong tokens, one for the misuse (never throttled)
    assert [e["reason"] for e in failed] == ["invalid", "wrong_evse"]
    logged = [e for e in logs if e.get("edge") is not None]
    assert logged
    assert all(len(e["edge"]) < 100 and len(e["evse"]) < 100 for e in logged)
    assert logged[0]["edge"].endswith("(7000 chars)")
