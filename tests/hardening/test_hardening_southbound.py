"""Round 9 red team, southbound: a device answering finite but impossible numbers.

The CEMM wire model refused NaN and non-numbers, but any finite ``electric_power`` became a
sample: ``-1e15`` W read as a feed-in of a petawatt, i.e. no building load at all (the charger
limit then only bounded by the fuse arithmetic on a lie). Now the CEMM meter applies the
plausibility bounds every Modbus meter driver applies (``wire.meters.Quantity.bounds``), so the
read fails with the reason and control takes the meter-loss fallback. A Bender's junk REST value
went whole (up to the 1 MiB body bound) into its error message and log line.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from fuseguard.control.ports import DeviceResponseError
from fuseguard.devices.bender.rest import BenderParseError, BenderRestState
from fuseguard.devices.cemm import CemmClient, CemmGridMeter

TS_MS = 1_698_912_061_000


class _Answer:
    body = b"{}"


@pytest.fixture
async def cemm() -> AsyncIterator[tuple[CemmGridMeter, _Answer]]:
    answer = _Answer()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=answer.body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with CemmClient(host="127.0.0.1", port=port, retry_attempts=1) as client:
        yield CemmGridMeter(client), answer
    await runner.cleanup()


def _realtime(power: float, t1_kwh: float = 6120.41, ts_ms: int = TS_MS) -> bytes:
    data = {"electric_power": [ts_ms, power], "t1": [ts_ms, t1_kwh], "t3": [ts_ms, 10.0]}
    return json.dumps({"data": data}).encode()


@pytest.mark.parametrize(
    ("power", "t1_kwh", "field"),
    [
        (-1e15, 1.0, "electric_power"),
        (1e300, 1.0, "electric_power"),
        (3.1e7, 1.0, "electric_power"),
        (412.0, 1e300, "t1+t2"),
        (412.0, -5.0, "t1+t2"),
    ],
)
async def test_cemm_impossible_numbers_are_garbage_naming_the_field(
    cemm: tuple[CemmGridMeter, _Answer], power: float, t1_kwh: float, field: str
) -> None:
    meter, answer = cemm
    answer.body = _realtime(power, t1_kwh)
    with pytest.raises(DeviceResponseError, match=re.escape(f"garbage answer: {field}: ")):
        await meter.read()


async def test_cemm_plausible_numbers_still_read_and_garbage_does_not_mark_stale(
    cemm: tuple[CemmGridMeter, _Answer],
) -> None:
    meter, answer = cemm
    answer.body = _realtime(-25_000.0)  # a feed-in of 25 kW is a PV plant, not garbage
    first = await meter.read()
    assert first.power_w == -25_000.0
    assert first.energy_import_wh == pytest.approx(6_120_410.0)
    answer.body = _realtime(-1e15, ts_ms=TS_MS + 1000)
    with pytest.raises(DeviceResponseError):
        await meter.read()
    # the refused telegram's timestamp was not taken: the next good one is fresh
    answer.body = _realtime(500.0, ts_ms=TS_MS + 1000)
    assert not (await meter.read()).stale


BENDER_CHARGING = Path(__file__).parent.parent / "fixtures" / "bender" / "5.33" / "charging.txt"


@pytest.mark.parametrize("key", ["current_a", "sig_current", "conn_state", "power_w"])
def test_bender_junk_value_error_is_short(key: str) -> None:
    # a junk value of 1 MiB (the device body bound) went whole into the error and the log line,
    # on every poll that fetched REST state
    junk = "9," * (1 << 19)
    lines = [
        f"{key}:{junk}" if line.split(":", 1)[0].strip() == key else line
        for line in BENDER_CHARGING.read_text().splitlines()
    ]
    with pytest.raises(BenderParseError) as err:
        BenderRestState.from_text("\n".join(lines))
    assert key in str(err.value) or "value set" in str(err.value)
    assert len(str(err.value)) < 200
