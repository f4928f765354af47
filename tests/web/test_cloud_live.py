"""The live relay (fleet click-through): the wire model, the relay's validation, the edge's lease.

Units here; the end-to-end path over the machine's Mosquitto is in ``test_cloud_live_e2e.py``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fuseguard.api.edge_evse import EdgeEvseBackend
from fuseguard.api.site_state import LimitSource
from fuseguard.api.web.core import TEMPLATES
from fuseguard.api.web.view import ViewContext, site_view
from fuseguard.cloud.acl import cloud_acl, edge_acl
from fuseguard.cloud.edge_agent import EdgeCloudAgent
from fuseguard.cloud.edge_live import LivePublisher
from fuseguard.cloud.link import LinkMessage
from fuseguard.cloud.live import RENEW_S, LiveRelay
from fuseguard.cloud.live_wire import MAX_PLUGS, LiveSnapshot, relay_view, snapshot_bytes
from fuseguard.cloud.protocol import MAX_PAYLOAD_BYTES, LiveRequest, Topics
from fuseguard.control.plug_settings import Departure
from fuseguard.control.targets import EvseTargets, Target
from fuseguard.model.clock import VirtualClock

from .webkit import TREE, plug_view, status

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
EDGE = "edge-1"


def edge_view(**kw: Any) -> dict[str, Any]:
    """The edge's own live page data for a test status at ``T0``."""
    ctx = ViewContext(
        tree=TREE,
        limit_source=LimitSource.EMS,
        settings={},
        targets={"e" * 32: Target(11, T0 + timedelta(minutes=5))},
        now=T0,
    )
    plug = plug_view(evse_uuid="e" * 32, **kw)
    return site_view(status(T0, plugs=(plug,)), ctx)


@dataclass
class FakeLink:
    """A link that records what is published."""

    connected: bool = True
    published: list[tuple[str, bytes, int]] = field(default_factory=list)

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        self.published.append((topic, payload, qos))

    async def subscribe(self, topic_filter: str, *, qos: int = 1) -> None:
        return None

    async def wait_connected(self, timeout_s: float) -> None:
        return None


def test_relayed_page_data_is_the_edges_own() -> None:
    view = edge_view()
    snapshot = LiveSnapshot.model_validate_json(snapshot_bytes(7, "Test site", view))
    relayed = relay_view(snapshot, 0.0, True)
    assert {k: relayed[k] for k in view} == view  # the same dict the edge's page renders
    assert relayed["stale"] is False
    assert relayed["plugs"][0]["target"]["valid_until"] == view["plugs"][0]["target"]["valid_until"]


def test_staleness_counts_the_time_since_the_cloud_received_it() -> None:
    snapshot = LiveSnapshot.model_validate_json(snapshot_bytes(7, "s", edge_view()))
    late = relay_view(snapshot, 12.0, True)
    assert late["stale"] is True
    assert late["age_s"] == 12.0
    assert late["stale_text"] == "Data is stale: no snapshot from the edge for 12 s"
    offline = relay_view(snapshot, 0.0, False)
    assert offline["stale"] is True
    assert offline["stale_text"].startswith("Edge offline")


def test_snapshot_caps_plugs_and_refuses_what_the_cloud_would_drop() -> None:
    view = edge_view()
    view["plugs"] = [dict(view["plugs"][0], id=f"p{i}") for i in range(MAX_PLUGS + 5)]
    snapshot = LiveSnapshot.model_validate_json(snapshot_bytes(1, "s", view))
    assert len(snapshot.site.plugs) == MAX_PLUGS
    assert snapshot.plugs_omitted == 5
    bad = edge_view()
    bad["plugs"][0]["current_a"] = [float("nan"), 1.0, 1.0]
    with pytest.raises(ValueError, match="current_a"):
        snapshot_bytes(1, "s", bad)


def _relay(clock: VirtualClock) -> tuple[LiveRelay, FakeLink, Topics]:
    topics = Topics("fgunit")
    relay = LiveRelay(topics, clock)
    return relay, FakeLink(), topics


def _hostile(valid: dict[str, Any]) -> list[bytes]:
    """Payloads a broken or hostile edge could send on its live topic."""

    def variant(path: tuple[Any, ...], value: Any) -> bytes:
        body = json.loads(json.dumps(valid))
        node = body
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return json.dumps(body).encode()

    return [
        b"",
        b"not json",
        b"[]",
        b'{"seq": 9}',
        variant(("seq",), -1),
        variant(("seq",), 2**64),
        variant(("site", "plugs", 0, "status"), "hacked"),
        variant(("site", "plugs", 0, "current_a"), [1.0, 2.0]),
        variant(("site", "plugs", 0, "power_w"), "NaN"),
        variant(("site", "plugs", 0, "label"), "x" * 10_000),
        variant(("site", "plugs", 0, "id"), '"><script>alert(1)</script>'),
        variant(("site", "circuits", 0, "phases", 0, "ev_pct"), "50%;background:url(x)"),
        variant(("site", "circuits", 0, "phases", 0, "ev_pct"), 1e308),
        variant(("site", "limit_source"), "anything"),
        variant(("site", "time"), "yesterday"),
        variant(("site", "plugs"), [valid["site"]["plugs"][0]] * (MAX_PLUGS + 1)),
        variant(("site_name",), "y" * (MAX_PAYLOAD_BYTES + 1)),
    ]


async def test_hostile_snapshots_are_dropped_and_never_end_the_relay() -> None:
    clock = VirtualClock(T0)
    relay, link, topics = _relay(clock)
    await relay.start(link)
    relay.hub(EDGE)
    topic = topics.live(EDGE)
    valid = json.loads(snapshot_bytes(10, "Site", edge_view()))
    payloads = _hostile(valid)
    for payload in payloads:
        assert relay.handle(LinkMessage(topic, payload)) is True
    assert relay.dropped == len(payloads)
    assert relay.latest(EDGE) is None
    assert relay.handle(LinkMessage(topic, json.dumps(valid).encode())) is True
    held = relay.latest(EDGE)
    assert held is not None
    assert held.snapshot.seq == 10
    older = dict(valid, seq=9, site_name="older")
    relay.handle(LinkMessage(topic, json.dumps(older).encode()))
    assert relay.latest(EDGE) == held  # an older snapshot never replaces a newer one
    # not ours, not a live topic, an edge nobody watches here
    assert relay.handle(LinkMessage(topics.state(EDGE), b"{}")) is False
    assert relay.handle(LinkMessage(topics.live("edge-2"), json.dumps(valid).encode())) is True
    assert relay.latest("edge-2") is None
    long_id = "e" * 200
    assert relay.handle(LinkMessage(topics.live(long_id), json.dumps(valid).encode())) is True
    assert relay.latest(long_id) is None


async def test_requests_are_leased_and_rate_limited() -> None:
    clock = VirtualClock(T0)
    relay, link, topics = _relay(clock)
    await relay.start(link)
    assert await relay.request(EDGE) is True
    assert await relay.request(EDGE) is False  # within RENEW_S
    await clock.advance(RENEW_S)
    assert await relay.request(EDGE) is True
    assert [t for t, _, _ in link.published] == [topics.command(EDGE)] * 2
    request = LiveRequest.model_validate_json(link.published[0][1])
    assert request.for_s > RENEW_S
    link.connected = False
    assert await relay.request("edge-2") is False


async def test_publisher_sends_only_while_a_lease_runs() -> None:
    clock = VirtualClock(T0)
    link = FakeLink()
    seq = iter(range(1, 1000))
    publisher = LivePublisher(
        link, "fg/edges/e/live", edge_view, clock, lambda: next(seq), edge_device_id="e"
    )
    task = asyncio.create_task(publisher.run())
    await clock.advance(10.0)
    assert link.published == []  # nobody asked: nothing built, nothing sent
    publisher.requested(3.0)
    await clock.advance(10.0)
    assert len(link.published) == 3
    assert all(qos == 0 for _, _, qos in link.published)
    seqs = [LiveSnapshot.model_validate_json(p).seq for _, p, _ in link.published]
    assert seqs == sorted(seqs)
    publisher.requested(2.0)
    await clock.advance(10.0)
    assert len(link.published) == 5
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_edge_agent_takes_the_live_request_from_its_command_topic() -> None:
    clock = VirtualClock(T0)
    backend = EdgeEvseBackend(EDGE, {}, EvseTargets(clock), lambda _u: [])
    agent = EdgeCloudAgent(
        "mqtt://127.0.0.1:1", EDGE, None, None, backend, [], clock,
        topic_prefix="fgunit", live_view=edge_view, site_name="Test site",
    )  # fmt: skip
    assert agent.live is not None
    cmd = agent.topics.command(EDGE)
    for bad in (b'{"op":"live","for_s":0}', b'{"op":"live","for_s":100000}', b'{"op":"x"}'):
        await agent._on_message(LinkMessage(cmd, bad))
        assert not agent.live.active
    await agent._on_message(LinkMessage(agent.topics.command("edge-2"), b'{"op":"live","for_s":5}'))
    assert not agent.live.active  # another edge's topic
    await agent._on_message(LinkMessage(cmd, b'{"op":"live","for_s":5}'))
    assert agent.live.active
    await clock.advance(5.0)
    assert not agent.live.active


def test_acl_lets_an_edge_write_only_its_own_live_topic() -> None:
    topics = Topics("fg")
    assert "topic write fg/edges/edge-a/live" in edge_acl(topics, "edge-a")
    topic_lines = [line for line in edge_acl(topics, "edge-a") if line.startswith("topic")]
    assert all(line.split()[2].startswith("fg/edges/edge-a/") for line in topic_lines)
    assert "topic read fg/edges/+/live" in cloud_acl(topics, "cloud")


def test_relayed_text_is_escaped_on_the_page() -> None:
    view = edge_view(reason="<script>alert(1)</script>", plug_label="<b>Plug</b>")
    snapshot = LiveSnapshot.model_validate_json(snapshot_bytes(1, "<i>site</i>", view))
    html = TEMPLATES.get_template("site.html").render(
        site=relay_view(snapshot, 0.0, True),
        site_name=snapshot.site_name,
        relay={"edge": "edge-1", "state": "online"},
        static_url="/fleet/static",
        stream_url="/fleet/edges/edge-1/stream",
    )
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>Plug</b>" not in html
    assert "&lt;i&gt;site&lt;/i&gt;" in html
    assert 'src="/fleet/static/live.js"' in html


def _departure_view() -> dict[str, Any]:
    """The edge's page data with a departure in force on its plug (in Zurich time)."""
    ctx = ViewContext(
        tree=TREE,
        limit_source=LimitSource.EMS,
        settings={},
        targets={},
        now=T0,
        departures={"wb1": Departure(T0 + timedelta(hours=20, minutes=30), 20_000.0, T0)},
        tz=ZoneInfo("Europe/Zurich"),
    )
    return site_view(status(T0, plugs=(plug_view(),)), ctx)


def test_the_departure_is_relayed_and_its_words_rebuilt_by_the_cloud() -> None:
    view = _departure_view()
    words = "09:30 tomorrow (2026-03-02) · 20 kWh · 20 h 30 min left"
    assert view["plugs"][0]["departure_words"] == words
    snapshot = LiveSnapshot.model_validate_json(snapshot_bytes(7, "Test site", view))
    relayed = relay_view(snapshot, 0.0, True)
    assert {k: relayed[k] for k in view} == view
    # the cloud shows its own words, from the numbers, not the edge's text
    lying = json.loads(snapshot_bytes(7, "Test site", view))
    lying["site"]["plugs"][0]["departure_words"] = "<b>lies</b>"
    lying["site"]["plugs"][0]["departure"]["words"] = "lies"
    relayed = relay_view(LiveSnapshot.model_validate(lying), 0.0, True)
    assert relayed["plugs"][0]["departure_words"] == words


def test_an_edge_that_relays_no_departure_shows_no_departure_row() -> None:
    old = json.loads(snapshot_bytes(7, "Test site", edge_view()))
    for key in ("departure", "departure_words"):
        del old["site"]["plugs"][0][key]
    relayed = relay_view(LiveSnapshot.model_validate(old), 0.0, True)
    assert "departure_words" not in relayed["plugs"][0]
    assert "departure" not in relayed["plugs"][0]
    page = TEMPLATES.get_template("site.html").render(site=relayed, relay={"edge": EDGE})
    assert 'data-f="departure_words"' not in page
    assert 'data-f="priority"' in page


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("left_s", -1),
        ("left_s", 2**70),
        ("need_kwh", "NaN"),
        ("need_kwh", 251.0),
        ("at", "2026-03-02T09:30:00"),  # no offset
        ("at", "soon"),
    ],
)
def test_a_hostile_departure_is_refused(key: str, value: Any) -> None:
    body = json.loads(snapshot_bytes(7, "Test site", _departure_view()))
    body["site"]["plugs"][0]["departure"][key] = value
    with pytest.raises(ValueError, match="departure"):
        LiveSnapshot.model_validate(body)
