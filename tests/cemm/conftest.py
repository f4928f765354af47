"""Shared fixtures for the CEMM tests: a virtual site, model, loopback server and client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from cemm_rig import Rig

from fuseguard.devices.cemm import CemmClient
from fuseguard.sim.cemm import CemmServerHandle, serve_cemm


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = Rig()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
async def server(rig: Rig) -> AsyncIterator[CemmServerHandle]:
    handle = await serve_cemm(rig.model, "127.0.0.1", 0, discovery_port=0)
    yield handle
    await handle.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def client(server: CemmServerHandle, session: aiohttp.ClientSession) -> CemmClient:
    return CemmClient(host="127.0.0.1", port=server.port, session=session, request_timeout_s=1.0)
