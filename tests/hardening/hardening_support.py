"""Stand-ins shared by the hardening tests."""

from __future__ import annotations

import asyncio
import base64

from fuseguard.api.local_models import LiveData
from fuseguard.control.flex import FlexManagement, MemoryFlexStore
from fuseguard.model.clock import Clock, VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.model.status import PlugStatus

USER = "ems"
PASSWORD = "s3cret-local-api"
FUSE_A = 35.0


class StaticLiveData:
    """A live-data source with one fixed value."""

    def __init__(self) -> None:
        self.data = LiveData(
            active_power_w=2300.0,
            reactive_power_var=0.0,
            current_a=Phases(3.0, 3.0, 4.0),
            voltage_v=Phases.uniform(230.0),
            status=PlugStatus.CHARGING,
        )

    def live_data(self) -> LiveData:
        """The fixed value."""
        return self.data


def make_flex(clock: Clock | None = None, store: MemoryFlexStore | None = None) -> FlexManagement:
    """Flex state on a virtual clock with a memory store."""
    return FlexManagement(
        clock or VirtualClock(),
        fuse_a=FUSE_A,
        timeout_s=120.0,
        default_fallback_a=10.0,
        store=store or MemoryFlexStore(),
    )


AUTH_HEADER = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


async def exchange(port: int, raw: bytes, *, read_s: float = 3.0) -> bytes:
    """Send ``raw`` to 127.0.0.1:``port``, return everything the server answers until it closes
    (or ``read_s``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(read_s):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    writer.close()
    return b"".join(chunks)


def http_status(answer: bytes) -> int:
    """The status code of a raw HTTP/1.1 answer (0: none)."""
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
