"""The live relay's topic under the generated broker files, enforced by a real Mosquitto: an edge
may publish live snapshots on its own topic only, and only the cloud reads them."""

from __future__ import annotations

import asyncio

import pytest
from cloudkit import wait_for
from test_cloud_broker import (  # the module's Mosquitto with the generated files
    PASSWORDS,
    PREFIX,
    Broker,
    _cloud_client,
    _collect,
    _edge_client,
    broker,  # noqa: F401  (fixture)
)

from fuseguard.cloud.protocol import Topics

pytestmark = pytest.mark.mqtt


async def test_an_edge_publishes_live_data_only_as_itself(broker: Broker) -> None:  # noqa: F811
    t = Topics(PREFIX)
    async with (
        _cloud_client(broker, "fuseguard-cloud-live") as cloud,
        _edge_client(broker, "edge-a", PASSWORDS["edge-a"], "edge-a") as a,
        _edge_client(broker, "edge-b", PASSWORDS["edge-b"], "edge-b") as b,
        _collect(cloud, t.all_lives()) as cloud_got,
        _collect(b, t.all_lives(), t.live("edge-a")) as b_got,
    ):
        await a.publish(t.live("edge-a"), b"a-own", qos=1)
        await a.publish(t.live("edge-b"), b"a-as-b", qos=1)
        await cloud.publish(t.live("edge-b"), b"cloud-as-b", qos=1)
        await b.publish(t.live("edge-b"), b"b-own", qos=1)

        async def settled() -> bool:
            return len(cloud_got) >= 2

        await wait_for(settled)
        await asyncio.sleep(0.5)  # anything that should not arrive had its chance
        assert sorted(cloud_got) == sorted(
            [f"{t.live('edge-a')} b'a-own'", f"{t.live('edge-b')} b'b-own'"]
        )
        assert b_got == []  # an edge cannot read live data, not even its own
