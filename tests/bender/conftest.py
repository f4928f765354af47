"""Fixtures: a virtual Bender served on loopback (both firmware versions)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from bender_bench import Bench, make_bench

from fuseguard.sim.bender import Firmware


@pytest.fixture(params=[Firmware.V5_33, Firmware.V5_22], ids=lambda f: f"fw{f.value}")
async def bench(request: pytest.FixtureRequest) -> AsyncIterator[Bench]:
    b = await make_bench(request.param)
    try:
        yield b
    finally:
        await b.handle.close()


@pytest.fixture
async def bench533() -> AsyncIterator[Bench]:
    b = await make_bench(Firmware.V5_33)
    try:
        yield b
    finally:
        await b.handle.close()
