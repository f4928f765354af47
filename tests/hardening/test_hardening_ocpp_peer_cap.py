"""Round 11: one peer's slow OCPP handshakes cannot take every pending slot of the central system.

Before, the OCPP server had only a total cap on connections in their opening handshake
(``max_pending_connections``, over it the oldest that sent no request is closed): one peer
opening slow handshakes filled it, and a charge point on another host reconnecting (its request
not yet sent, e.g. during its TLS handshake) was the oldest silent connection and was closed.
Now one peer (host) holds at most ``max_pending_connections_per_peer`` pending connections (past
it, its own oldest silent one is closed), and only handshakes in progress count: an
authenticated charge point holds no slot (chargers behind one NAT). Peers are 127.0.0.1 and
127.0.0.2 (Linux: all of 127/8 is local).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from ocpp.v16 import call
from pydantic import ValidationError
from structlog.testing import capture_logs
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection

from fuseguard.config import FuseguardConfig, load_config
from fuseguard.config.apis import (
    EvseApiConfig,
    LocalApiConfig,
    MetricsApiConfig,
    ModbusApiConfig,
    MqttConfig,
)
from fuseguard.config.ocpp import OcppApiConfig
from fuseguard.devices.factory import build_chargers
from fuseguard.devices.ocpp import OcppCentralSystem, OcppConnector
from fuseguard.devices.ocpp.guard import PendingCap, default_pending_per_peer
from fuseguard.model.clock import RealClock
from tests.hardening.hardening_support import exchange
from tests.hardening.test_hardening_ocpp import _upgrade
from tests.ocpp.conftest import PASSWORD, Script, ScriptedChargePoint, basic, central, wait_for

PEER_A = "127.0.0.1"
PEER_B = "127.0.0.2"
PER_PEER = 3
FLOOD = 40
#: an opening handshake request that never completes (a slow peer): it sends no full request
SLOW = b"GET /ocpp/CP1 HTTP/1.1\r\nHost: edge\r\n"

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _slow(port: int, peer: str) -> Stream:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(peer, 0))
    writer.write(SLOW)
    await writer.drain()
    return reader, writer


def _close(streams: list[Stream]) -> None:
    for _, writer in streams:
        writer.close()


@contextlib.asynccontextmanager
async def _booted(url: str, **connect_kwargs: Any) -> AsyncIterator[ScriptedChargePoint]:
    """Charge point CP1 connected (``local_addr`` or ``sock`` in ``connect_kwargs``) and booted."""
    headers = {"Authorization": basic("CP1", PASSWORD)}
    async with connect(
        url,
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        additional_headers=headers,
        open_timeout=10,
        **connect_kwargs,
    ) as ws:
        cp = ScriptedChargePoint("CP1", ws, Script())
        task = asyncio.create_task(cp.start())
        try:
            boot = call.BootNotification(charge_point_model="Test", charge_point_vendor="fuseguard")
            assert (await cp.call(boot)).status == "Accepted"
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def test_one_peer_is_held_to_its_share_and_a_charge_point_on_another_peer_boots() -> None:
    async with central(max_pending_connections=8, max_pending_connections_per_peer=PER_PEER) as (
        site
    ):
        cap = site.server.pending_cap
        port = site.server.port
        # peer B's charge point has connected but not sent its request yet (its TLS handshake,
        # say): the oldest silent connection, which the total cap alone closed first
        raw = socket.create_connection(("127.0.0.1", port), source_address=(PEER_B, 0))
        raw.setblocking(False)
        await wait_for(lambda: cap.peers.count(PEER_B) == 1)
        flood: list[Stream] = []
        try:
            with capture_logs() as logs:
                flood = [await _slow(port, PEER_A) for _ in range(FLOOD)]
                await wait_for(lambda: cap.evicted_per_peer >= FLOOD - PER_PEER)
            assert cap.peers.count(PEER_A) == PER_PEER
            assert cap.evicted == cap.evicted_per_peer  # the total cap was never reached
            evicted = [e for e in logs if e["event"] == "ocpp_connection_evicted"]
            assert len(evicted) == 1  # one line per burst and peer
            assert evicted[0]["peer"] == PEER_A
            assert evicted[0]["log_level"] == "warning"
            assert evicted[0]["device"] == "ocpp"
            # peer B's connection survived the flood: it completes its handshake and boots
            async with _booted(site.url(), sock=raw):
                await wait_for(site.station.ready.is_set)
                assert cap.peers.count(PEER_B) == 0  # authenticated: no pending slot
            assert cap.peers.count(PEER_A) == PER_PEER  # peer A still held to its share
        finally:
            _close(flood)
            raw.close()


async def test_a_charge_point_behind_the_flooding_address_still_gets_in() -> None:
    # chargers behind one NAT share an address with whatever else is behind it: past the share,
    # the peer's oldest silent connection is closed, not the charge point that sends its request
    async with central(max_pending_connections=8, max_pending_connections_per_peer=PER_PEER) as (
        site
    ):
        cap = site.server.pending_cap
        flood = [await _slow(site.server.port, PEER_A) for _ in range(FLOOD)]
        try:
            await wait_for(lambda: cap.evicted_per_peer >= FLOOD - PER_PEER)
            async with _booted(site.url(), local_addr=(PEER_A, 0)):
                await wait_for(site.station.ready.is_set)
            assert cap.peers.count(PEER_A) <= PER_PEER
        finally:
            _close(flood)


async def test_an_authenticated_charge_point_holds_no_pending_slot() -> None:
    async with central(max_pending_connections=8, max_pending_connections_per_peer=1) as site:
        cap = site.server.pending_cap
        async with _booted(site.url(), local_addr=(PEER_A, 0)) as cp:
            await wait_for(site.station.ready.is_set)
            session = site.station.session
            assert cap.peers.count(PEER_A) == 0
            # the peer's one pending slot is free for another handshake (a second charger
            # behind the same NAT): admitted, nothing evicted, the session untouched
            held = await _slow(site.server.port, PEER_A)
            try:
                await wait_for(lambda: cap.peers.count(PEER_A) == 1)
                assert cap.evicted == 0
                assert site.station.session is session
                await site.connectors[0].set_current_limit(10)  # the session still works
                assert (
                    cp.leases()[-1]["charging_schedule"]["charging_schedule_period"][0]["limit"]
                    == 10
                )
            finally:
                _close([held])
            await wait_for(lambda: cap.peers.count(PEER_A) == 0)


async def test_the_peer_share_is_released_however_the_handshake_ends() -> None:
    async with central(max_pending_connections_per_peer=2, open_timeout_s=0.3) as site:
        cap = site.server.pending_cap
        port = site.server.port
        # refused (401), garbage (no HTTP), closed by the peer, timed out: each frees its slot
        answer = await exchange(port, _upgrade("/ocpp/CP1", "CP1", "wrong"), read_s=5.0)
        assert answer.startswith(b"HTTP/1.1 401")
        await exchange(port, b"garbage\r\n\r\n", read_s=5.0)
        gone = await _slow(port, PEER_A)
        await wait_for(lambda: cap.peers.count(PEER_A) == 1)
        _close([gone])
        await wait_for(lambda: cap.peers.count(PEER_A) == 0)
        reader, writer = await _slow(port, PEER_A)
        try:
            async with asyncio.timeout(10.0):  # the server closes it after 0.3 s
                assert await reader.read(1) == b""
        finally:
            writer.close()
        await wait_for(lambda: cap.peers.peers == 0)
        assert cap.evicted == 0


class _Transport:
    def __init__(self) -> None:
        self.closing = False

    def abort(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing


class _Connection:
    """What :meth:`PendingCap.admit_peer` reads of a connection: its request and transport."""

    def __init__(self, request: object | None) -> None:
        self.request = request
        self.transport = _Transport()


def _fake(request: object | None) -> ServerConnection:
    return cast("ServerConnection", _Connection(request))


def test_past_its_share_a_peer_whose_handshakes_all_sent_their_request_is_refused() -> None:
    cap = PendingCap(8, max_pending_per_peer=2)
    answered = [_fake(object()), _fake(object())]  # requests complete, being answered
    assert all(cap.admit_peer(c, PEER_A) for c in answered)
    new = _fake(None)
    with capture_logs() as logs:
        assert not cap.admit_peer(new, PEER_A)
    assert new.transport.is_closing()
    assert not any(c.transport.is_closing() for c in answered)
    assert cap.peers.count(PEER_A) == 2
    assert [e["event"] for e in logs] == ["ocpp_connection_evicted"]
    assert cap.admit_peer(_fake(None), PEER_B)  # another peer has its own share
    cap.peer_done(answered[0])
    cap.peer_done(answered[0])  # idempotent
    assert cap.peers.count(PEER_A) == 1


def test_the_per_peer_share_defaults_to_half_of_the_pending_cap() -> None:
    assert OcppCentralSystem({}).pending_cap.max_pending_per_peer == 64
    assert OcppApiConfig().max_pending_connections_per_peer is None
    with pytest.raises(ValueError, match="max_pending_connections_per_peer"):
        PendingCap(4, max_pending_per_peer=5)


@pytest.mark.parametrize(
    ("ocpp", "per_peer"),
    [
        ({"max_pending_connections": 16}, 8),
        ({"max_pending_connections": 16, "max_pending_connections_per_peer": 16}, 16),
        ({"max_pending_connections_per_peer": 5}, 5),
    ],
)
def test_the_config_key_reaches_the_server(ocpp: dict[str, Any], per_peer: int) -> None:
    charger = {"id": "c1", "evse_uuid": "1" * 32, "driver": "ocpp", "ocpp_id": "CP1",
               "ocpp_password": PASSWORD, "plugs": [{"uuid": "2" * 32, "label": "P"}]}  # fmt: skip
    cfg = FuseguardConfig.model_validate(
        {
            "site": {"edge_id": "e", "main_fuse_a": 32},
            "chargers": [charger],
            "api": {"ocpp": {"port": 0, **ocpp}},
        }
    )
    drivers = build_chargers(cfg, None, RealClock())  # type: ignore[arg-type]  # no HTTP session needed
    connector = drivers["c1"]
    assert isinstance(connector, OcppConnector)
    assert connector.server.pending_cap.max_pending_per_peer == per_peer


@pytest.mark.parametrize(
    ("ocpp", "match"),
    [
        ({"max_pending_connections_per_peer": 0}, "greater than or equal to 1"),
        (
            {"max_pending_connections": 16, "max_pending_connections_per_peer": 17},
            r"max_pending_connections_per_peer \(17\) must be at most max_pending_connections",
        ),
    ],
)
def test_config_validation_names_the_key(ocpp: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match) as err:
        OcppApiConfig.model_validate(ocpp)
    assert "max_pending_connections_per_peer" in str(err.value)


ROOT = Path(__file__).parents[2]


def test_the_example_and_readme_list_the_round_11_keys_at_their_defaults() -> None:
    example = ROOT / "examples" / "site.toml"
    raw = tomllib.loads(example.read_text())
    api = raw["api"]
    listeners = {"local": LocalApiConfig, "modbus": ModbusApiConfig, "evse": EvseApiConfig,
                 "metrics": MetricsApiConfig}  # fmt: skip
    for section, model in listeners.items():
        default = model.model_fields["max_connections_per_peer"].default
        assert api[section]["max_connections_per_peer"] == default, section
    assert raw["mqtt"]["max_message_bytes"] == MqttConfig.model_fields["max_message_bytes"].default
    ocpp = api["ocpp"]
    total = OcppApiConfig.model_fields["max_pending_connections"].default
    assert ocpp["max_pending_connections"] == total
    assert ocpp["max_pending_connections_per_peer"] == default_pending_per_peer(total)
    assert load_config(example).api.ocpp.max_pending_connections_per_peer == 64
    readme = (ROOT / "README.md").read_text()
    for key in (
        "max_connections_per_peer",
        "max_message_bytes",
        "max_pending_connections_per_peer",
    ):
        assert key in readme
