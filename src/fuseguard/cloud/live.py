"""The cloud's side of the live relay: edges' live snapshots fanned out to the edge page's viewers.

:class:`LiveRelay` subscribes to ``{prefix}/edges/+/live`` on the replica's link. An edge
publishes there only while some replica asks it to (:meth:`LiveRelay.request`, a
:class:`~fuseguard.cloud.protocol.LiveRequest` on the edge's command topic, at most every
:data:`RENEW_S` per edge, for :data:`LEASE_S`), so the fleet costs nothing while nobody watches.

Every message is hostile until validated (:class:`~fuseguard.cloud.live_wire.LiveSnapshot`): an
oversized payload, a bad edge id, a snapshot that does not validate or is older than the one held
is logged and dropped; nothing a message holds can end the link (:meth:`LiveRelay.handle` never
raises). Snapshots are kept only for edges a viewer opened (at most :data:`MAX_WATCHED`, the least
recently opened without a viewer is forgotten first), so no edge can fill the cloud's memory.

Each watched edge has a :class:`~fuseguard.api.web.live.LiveHub` (the edge dashboard's fan-out):
a snapshot is rendered once (:func:`~fuseguard.cloud.live_wire.relay_view`) and the same bytes
go to every viewer; a ``ping`` every few seconds without a snapshot makes the page say "stale".
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import structlog

from fuseguard.api.web.live import LiveHub
from fuseguard.cloud.link import Link, LinkMessage
from fuseguard.cloud.live_wire import LiveSnapshot, relay_view
from fuseguard.cloud.protocol import (
    MAX_EDGE_ID_LEN,
    MAX_PAYLOAD_BYTES,
    LiveRequest,
    Topics,
    describe_error,
)
from fuseguard.control.ports import DeviceError
from fuseguard.model.clock import Clock

log = structlog.get_logger(__name__)

#: Seconds an edge keeps publishing after one request (the viewer's stream renews it).
LEASE_S = 60
#: A new request to an edge at most this often (a viewer's stream asks at every event).
RENEW_S = 15.0
#: Edges whose snapshots the relay holds at once.
MAX_WATCHED = 256


@dataclass(frozen=True, slots=True)
class Received:
    """A validated snapshot and when (monotonic, the relay's clock) it arrived."""

    snapshot: LiveSnapshot
    at_s: float


class LiveRelay:
    """Live snapshots of the watched edges (module docstring)."""

    def __init__(self, topics: Topics, clock: Clock, *, max_watched: int = MAX_WATCHED) -> None:
        self.topics = topics
        self.clock = clock
        self.max_watched = max_watched
        self._link: Link | None = None
        self._hubs: OrderedDict[str, LiveHub[Received]] = OrderedDict()
        self._requested_at: dict[str, float] = {}
        self._first: dict[str, asyncio.Event] = {}
        #: Messages dropped as invalid (for tests and logs).
        self.dropped = 0

    async def start(self, link: Link) -> None:
        """Use ``link`` and subscribe to every edge's live topic."""
        self._link = link
        await link.subscribe(self.topics.all_lives(), qos=0)

    # --- viewers ---------------------------------------------------------------------------------

    def hub(self, edge_device_id: str) -> LiveHub[Received]:
        """The fan-out of one edge (created when a viewer opens its page)."""
        hub = self._hubs.get(edge_device_id)
        if hub is None:
            hub = LiveHub(self._render)
            self._hubs[edge_device_id] = hub
            self._evict()
        self._hubs.move_to_end(edge_device_id)
        return hub

    def latest(self, edge_device_id: str) -> Received | None:
        """The newest snapshot of a watched edge."""
        hub = self._hubs.get(edge_device_id)
        return None if hub is None else hub.latest

    def _evict(self) -> None:
        for edge in list(self._hubs):
            if len(self._hubs) <= self.max_watched:
                return
            if self._hubs[edge].viewers == 0:
                del self._hubs[edge]
                self._requested_at.pop(edge, None)
                self._first.pop(edge, None)

    def _render(self, received: Received) -> dict[str, Any]:
        return relay_view(received.snapshot, self.clock.monotonic() - received.at_s, None)

    def view(self, edge_device_id: str, online: bool | None) -> dict[str, Any] | None:
        """The page's dict of the newest snapshot (None before the first)."""
        received = self.latest(edge_device_id)
        if received is None:
            return None
        return relay_view(received.snapshot, self.clock.monotonic() - received.at_s, online)

    async def request(self, edge_device_id: str, *, force: bool = False) -> bool:
        """Ask the edge for snapshots (at most every :data:`RENEW_S`); False if not sent."""
        now = self.clock.monotonic()
        last = self._requested_at.get(edge_device_id)
        if not force and last is not None and now - last < RENEW_S:
            return False
        link = self._link
        if link is None or not link.connected:
            return False
        self._requested_at[edge_device_id] = now
        payload = LiveRequest(op="live", for_s=LEASE_S).to_bytes()
        try:
            await link.publish(self.topics.command(edge_device_id), payload, qos=0)
        except DeviceError as err:
            self._requested_at.pop(edge_device_id, None)
            log.warning("live_request_not_sent", edge=edge_device_id, reason=str(err)[:300])
            return False
        return True

    # --- incoming ---------------------------------------------------------------------------------

    def handle(self, message: LinkMessage) -> bool:
        """Take ``message`` if it is a live snapshot (True), else leave it (False). Never raises."""
        parsed = self.topics.parse(message.topic)
        if parsed is None or parsed[1] != "live":
            return False
        edge = parsed[0]
        try:
            self._take(edge, message.payload)
        except Exception as err:  # hostile input: log and drop, whatever it was
            self.dropped += 1
            log.warning(
                "edge_live_dropped",
                edge=edge[:MAX_EDGE_ID_LEN],
                topic=message.topic[:300],
                reason=describe_error(err),
            )
        return True

    def _take(self, edge: str, payload: bytes) -> None:
        if len(edge) > MAX_EDGE_ID_LEN:
            msg = f"edge id longer than {MAX_EDGE_ID_LEN} characters"
            raise ValueError(msg)
        hub = self._hubs.get(edge)
        if hub is None:
            return  # nobody watches this edge here (another replica asked for it)
        if len(payload) > MAX_PAYLOAD_BYTES:
            msg = f"payload of {len(payload)} bytes (limit {MAX_PAYLOAD_BYTES})"
            raise ValueError(msg)
        snapshot = LiveSnapshot.model_validate_json(payload)
        held = hub.latest
        if held is not None and held.snapshot.seq >= snapshot.seq:
            return  # older or repeated
        hub.on_status(Received(snapshot, self.clock.monotonic()))
        first = self._first.pop(edge, None)
        if first is not None:
            first.set()

    async def wait_first(self, edge_device_id: str, timeout_s: float) -> bool:
        """Wait until a watched edge's first snapshot arrived (network wait); False on timeout."""
        if self.latest(edge_device_id) is not None:
            return True
        event = self._first.setdefault(edge_device_id, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """End every viewer's stream."""
        for hub in self._hubs.values():
            hub.close()


__all__ = ["LEASE_S", "MAX_WATCHED", "RENEW_S", "LiveRelay", "Received"]
