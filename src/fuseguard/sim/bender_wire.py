"""How the virtual Bender's wire servers misbehave under the wire faults (offline, slow, garbage).

The electrical state lives in the charge-point core (:mod:`fuseguard.sim.chargepoint`); this
module only decides how long a request waits before it is answered. ``offline`` holds every
request until the fault is cleared (or the server closes): to a client this is a device that does
not answer. ``slow`` answers after ``BenderDeviceConfig.slow_delay_s`` seconds of *wall* time:
network latency, not simulation time.
"""

from __future__ import annotations

import asyncio
import contextlib

from fuseguard.model.faults import DeviceFault
from fuseguard.sim.bender import BenderConnector


class WireGate:
    """Per-connector gate that the REST and Modbus handlers pass before answering."""

    def __init__(self, connector: BenderConnector, closing: asyncio.Event) -> None:
        self._connector = connector
        self._closing = closing
        self._online = asyncio.Event()
        self._update(connector)
        connector.on_change(self._update)

    def _update(self, connector: BenderConnector) -> None:
        if DeviceFault.OFFLINE in connector.faults:
            self._online.clear()
        else:
            self._online.set()

    @property
    def garbage(self) -> bool:
        """True while the connector should answer garbage."""
        return DeviceFault.GARBAGE in self._connector.faults

    async def pass_through(self) -> bool:
        """Wait as the active faults demand; False when the server is closing meanwhile."""
        faults = self._connector.faults
        if DeviceFault.OFFLINE in faults:
            online = asyncio.create_task(self._online.wait())
            closing = asyncio.create_task(self._closing.wait())
            try:
                await asyncio.wait({online, closing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                online.cancel()
                closing.cancel()
            if self._closing.is_set():
                return False
        if DeviceFault.SLOW in self._connector.faults:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._closing.wait(), timeout=self._connector.config.slow_delay_s
                )
        return not self._closing.is_set()
