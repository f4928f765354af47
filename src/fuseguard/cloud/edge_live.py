"""The edge's side of the live relay: live snapshots on its own topic while the cloud asks.

A cloud replica with a viewer on an edge's page sends :class:`~fuseguard.cloud.protocol.LiveRequest`
(``for_s`` seconds, renewed while the viewer stays) on the edge's command topic. From then until
the lease runs out :class:`LivePublisher` publishes the live page's data
(:func:`fuseguard.api.web.service.live_view_source`) as a
:class:`~fuseguard.cloud.live_wire.LiveSnapshot` every ``interval_s`` (QoS 0, not retained) on
``{prefix}/edges/E/live``. Nobody watching: nothing is built or sent (an edge on a metered uplink
pays for nothing). A snapshot that cannot be built or sent is logged and skipped; the loop goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from fuseguard.cloud.link import Link
from fuseguard.cloud.live_wire import snapshot_bytes
from fuseguard.cloud.protocol import describe_error
from fuseguard.model.clock import Clock

log = structlog.get_logger(__name__)

#: Seconds between two snapshots while a viewer watches.
LIVE_INTERVAL_S = 1.0


class LivePublisher:
    """Publishes live snapshots of one edge while a lease from the cloud runs (module docstring)."""

    def __init__(
        self,
        link: Link,
        topic: str,
        view: Callable[[], dict[str, Any]],
        clock: Clock,
        next_seq: Callable[[], int],
        *,
        edge_device_id: str,
        site_name: str = "",
        interval_s: float = LIVE_INTERVAL_S,
    ) -> None:
        self._link = link
        self._topic = topic
        self._view = view
        self._clock = clock
        self._next_seq = next_seq
        self.edge_device_id = edge_device_id
        self.site_name = site_name
        self.interval_s = interval_s
        self._until = 0.0
        self._asked = asyncio.Event()
        #: Snapshots published so far.
        self.published = 0

    @property
    def active(self) -> bool:
        """A lease runs."""
        return self._clock.monotonic() < self._until

    def requested(self, for_s: float) -> None:
        """A cloud viewer asks for ``for_s`` more seconds of snapshots (from now)."""
        self._until = max(self._until, self._clock.monotonic() + for_s)
        self._asked.set()

    def snapshot(self) -> bytes:
        """The next snapshot's bytes (raises ``ValueError`` when it cannot be sent)."""
        return snapshot_bytes(self._next_seq(), self.site_name, self._view())

    async def publish_once(self) -> bool:
        """Build and publish one snapshot; False (logged) when that failed."""
        try:
            data = self.snapshot()
            await self._link.publish(self._topic, data, qos=0)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the relay loop must go on
            log.warning(
                "edge_live_not_published", edge=self.edge_device_id, reason=describe_error(err)
            )
            return False
        self.published += 1
        return True

    async def run(self) -> None:
        """Until cancelled: wait for a request, then publish every ``interval_s`` while it runs."""
        while True:
            await self._asked.wait()
            self._asked.clear()
            log.info("edge_live_started", edge=self.edge_device_id, reason="cloud viewer")
            while self.active:
                self._asked.clear()  # a renewal while running is no new start
                if self._link.connected:
                    await self.publish_once()
                await self._clock.sleep(self.interval_s)
            log.info("edge_live_stopped", edge=self.edge_device_id, reason="lease ran out")


__all__ = ["LIVE_INTERVAL_S", "LivePublisher"]
