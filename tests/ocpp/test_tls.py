"""Security profile 2: TLS + HTTP Basic, the password still checked in the handshake."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from fuseguard.api.tls import ensure_self_signed_cert
from fuseguard.devices.ocpp import OcppCentralSystem, Station, StationConfig
from fuseguard.devices.ocpp.server import server_ssl_context
from fuseguard.model.clock import RealClock

from .conftest import PASSWORD, basic, wait_for


async def test_profile_2_over_wss(tmp_path: Path) -> None:
    cert, key = ensure_self_signed_cert(tmp_path, ["127.0.0.1"])
    station = Station(
        StationConfig(identity="CP1", password=PASSWORD, boot_wait_s=0.2), RealClock()
    )
    server = OcppCentralSystem(
        {"CP1": station}, host="127.0.0.1", port=0, ssl_context=server_ssl_context(cert, key)
    )
    await server.start()
    try:
        assert server.url.startswith("wss://")
        client_tls = ssl.create_default_context(cafile=str(cert))
        url = f"{server.url}/CP1"
        with pytest.raises(InvalidStatus) as err:
            async with connect(url, ssl=client_tls, subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                               additional_headers={"Authorization": basic("CP1", "wrong")}):  # fmt: skip
                pass
        assert err.value.response.status_code == 401
        async with connect(url, ssl=client_tls, subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           additional_headers={"Authorization": basic("CP1", PASSWORD)}) as ws:  # fmt: skip
            assert ws.subprotocol == "ocpp1.6"
            await wait_for(lambda: station.session is not None)
        # plain ws:// to a wss:// server gets no OCPP session
        with pytest.raises(Exception):  # noqa: B017 - the exact error depends on the TLS stack
            async with connect(
                url.replace("wss://", "ws://"), subprotocols=["ocpp1.6"], open_timeout=3
            ):  # type: ignore[list-item]
                pass
    finally:
        await server.close()
