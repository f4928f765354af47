"""The CEMM wire models are the contract of both sides: what the virtual CEMM serves parses with
the driver's models, and what no CEMM would send is refused before it becomes a number."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuseguard.devices.cemm import (
    parse_connections,
    parse_device_info,
    parse_discovery,
    parse_history,
    parse_realtime,
)
from fuseguard.model.clock import VirtualClock
from fuseguard.sim.cemm import AliasConfig, CemmModel
from fuseguard.sim.cemm_server import CemmDiscoveryResponder
from fuseguard.wire.cemm import CHANNELS, HistoryBody, Period, RealtimeBody, alias_kind

ALIASES = [
    AliasConfig("p1", io_id=1, port=3, source=lambda: 1234.0, gas_m3_per_h=0.2),
    AliasConfig("p1-gas", io_id=2, port=3, gas_m3_per_h=0.6),
    AliasConfig("s01", io_id=3, port=2, source=lambda: 900.0),
    AliasConfig("pulse-2", io_id=4, port=1, source=lambda: 6.0),
    AliasConfig("mb12", io_id=5, port=4, source=lambda: -1500.5),
    AliasConfig("usage", io_id=9, port=0, source=lambda: 400.0),
]


@pytest.fixture
async def model() -> CemmModel:
    clock = VirtualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    cemm = CemmModel(clock, ALIASES)
    for _ in range(5):
        cemm.tick()
        await clock.advance(60)
    cemm.tick()
    return cemm


def _over_the_wire(body: dict[str, Any]) -> Any:
    """What the driver receives: the body after a JSON round trip."""
    return json.loads(json.dumps(body))


async def test_every_answer_of_the_virtual_cemm_parses_with_the_driver_models(
    model: CemmModel,
) -> None:
    info = parse_device_info(_over_the_wire(model.identity.root_body()))
    assert info.mac == model.identity.mac
    conns = parse_connections(_over_the_wire(model.io_body()))
    assert [c.alias for c in conns] == [a.alias for a in ALIASES]
    for cfg in ALIASES:
        realtime = parse_realtime(cfg.alias, _over_the_wire(model.realtime_body(cfg.alias)))
        data_keys, total_keys = CHANNELS[alias_kind(cfg.alias)]
        assert tuple(realtime.data) == data_keys
        assert tuple(realtime.totals) == total_keys
        for reading in (*realtime.data.values(), *realtime.totals.values()):
            assert math.isfinite(reading.value)
        for period in Period:
            history = parse_history(_over_the_wire(model.history_body(cfg.alias, period, None)))
            assert history.io_id == str(cfg.io_id)
            assert len(history.channels) == 1


def test_the_discovery_reply_parses_with_the_driver_model() -> None:
    cemm = CemmModel(VirtualClock(), ALIASES[:1])
    body = CemmDiscoveryResponder(cemm, advertise_ip="10.0.0.5").reply_body("10.0.0.1")
    reply = parse_discovery(json.dumps(body).encode(), ("10.0.0.5", 9777))
    assert (reply.ip, reply.mac, reply.init_state) == ("10.0.0.5", cemm.identity.mac, 1)


async def test_an_integer_stays_an_integer_on_the_wire(model: CemmModel) -> None:
    """The device sends ``412``, not ``412.0``: building through the models keeps that."""
    power = model.realtime_body("p1")["data"]["electric_power"]
    assert isinstance(power[0], int)
    assert isinstance(power[1], int)
    assert isinstance(model.realtime_body("p1")["data"]["rate"][1], int)


GOOD_PAIR = [1_700_000_000_000, 412]


@pytest.mark.parametrize(
    "pair",
    [
        [1_700_000_000_000, float("nan")],
        [1_700_000_000_000, float("inf")],
        [1_700_000_000_000, True],
        [1_700_000_000_000, "412"],
        [1_700_000_000_000, None],
        [-1, 412],
        [1.7e12, 412],
        [True, 412],
        [1_700_000_000_000],
        [1_700_000_000_000, 412, 3],
        "1700000000000,412",
    ],
)
def test_a_realtime_pair_that_is_not_data_is_refused(pair: object) -> None:
    with pytest.raises(ValueError):
        parse_realtime("p1", {"data": {"electric_power": pair, "t1": GOOD_PAIR}})


@pytest.mark.parametrize(
    "body",
    [
        {"data": {"mac": "x" * 500, "name": "n", "type": "t", "version": "v", "core": "c"}},
        {"data": {"mac": 1, "name": "n", "type": "t", "version": "v", "core": "c"}},
        {"data": {"name": "n", "type": "t", "version": "v", "core": "c"}},
        {"data": []},
    ],
)
def test_device_info_that_is_not_data_is_refused(body: object) -> None:
    with pytest.raises(ValueError):
        parse_device_info(body)


def test_the_json_parser_refuses_nan_tokens() -> None:
    with pytest.raises(ValueError):
        RealtimeBody.model_validate_json(b'{"data": {"electric_power": [1, NaN]}}')
    with pytest.raises(ValueError):
        RealtimeBody.model_validate_json(b'{"data": {"electric_power": [1, Infinity]}}')
    with pytest.raises(ValueError):
        HistoryBody.model_validate_json(b'{"io_id": "1", "time": 1e3, "data": {}}')


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    data=st.dictionaries(
        st.sampled_from(["electric_power", "t1", "t3", "gas"]),
        st.one_of(JSON, st.tuples(st.integers(-5, 2**50), JSON).map(list)),
        max_size=4,
    ),
    totals=JSON,
)
def test_any_json_either_parses_to_finite_readings_or_is_refused(
    data: dict[str, Any], totals: Any
) -> None:
    try:
        realtime = parse_realtime("p1", {"data": data, "totals": totals})
    except ValueError:
        return
    for reading in (*realtime.data.values(), *realtime.totals.values()):
        assert math.isfinite(reading.value)
        assert isinstance(reading.timestamp_ms, int)
        assert reading.timestamp_ms >= 0
