"""Lightweight simulated edges for ``bench/cloud.py``: one process, thousands of edges.

Every edge is a real :class:`~fuseguard.cloud.edge_agent.EdgeCloudAgent` (command checks, ``seq``
stamps, retained state with a last will, retained status, an ack to the replica named in
``reply_to``) with its OWN MQTT connection on its OWN topics: the protocol is unchanged. Only the
transport is lighter: instead of one aiomqtt/paho client per edge (a background task that wakes
every second, ~100 KB each), :class:`LiteLink` speaks the few MQTT 3.1.1 packets an edge needs
(CONNECT with a will, SUBSCRIBE, PUBLISH/PUBACK at QoS 1, PINGREQ) directly on an asyncio stream
and costs nothing while idle. Bench code only; the product keeps :class:`MqttLink`.

Run by ``bench/cloud.py`` as ``python bench/cloud_agents.py --broker HOST:PORT --prefix P
--first I --count N``; prints ``ready`` when every edge is connected and online, then answers
``stats`` on stdin with one JSON line (commands acknowledged ``received`` / ``rejected``) and
exits at end of input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import socket
import struct
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Literal

import structlog

from fuseguard.api.evse_models import EvseInfo, PlugStatusRecord
from fuseguard.cloud.edge_agent import EdgeCloudAgent
from fuseguard.cloud.link import LastWill, LinkDownError, LinkMessage, LinkTimeoutError
from fuseguard.cloud.protocol import AckMessage, CommandMessage
from fuseguard.control.targets import EvseTargets, Target
from fuseguard.model.clock import RealClock
from fuseguard.model.phases import ZERO
from fuseguard.model.status import PlugStatus

_NS = uuid.UUID("6f1c1f0e-54a0-4d3c-9d0e-6a0fb1e0c0de")


def edge_id(i: int) -> str:
    """The id of simulated edge ``i``."""
    return f"bench-edge-{i:05d}"


def evse_info(prefix: str, i: int) -> EvseInfo:
    """The one EVSE of edge ``i`` (deterministic, so the benchmark can make its tokens)."""
    evse = uuid.uuid5(_NS, f"{prefix}/{i}/evse").hex
    plug = uuid.uuid5(_NS, f"{prefix}/{i}/plug").hex
    return EvseInfo(evse, 6, 32, ((plug, "Plug 1"),))


class MemoryBackend:
    """The smallest EvseBackend an edge can have: targets in memory, one idle plug."""

    def __init__(self, info: EvseInfo, clock: RealClock) -> None:
        self.info = info
        self.clock = clock
        self.targets = EvseTargets(clock)

    async def evse(self, edge_device_id: str, evse_uuid: str) -> EvseInfo | None:
        return self.info if evse_uuid == self.info.evse_uuid else None

    async def set_target(
        self, edge_device_id: str, evse_uuid: str, current_a: int, duration_s: int
    ) -> Literal["received", "rejected"]:
        await self.targets.set(evse_uuid, current_a, duration_s)
        return "received"

    async def get_target(self, edge_device_id: str, evse_uuid: str) -> Target | None:
        return self.targets.get(evse_uuid)

    async def clear_target(self, edge_device_id: str, evse_uuid: str) -> Target | None:
        return await self.targets.clear(evse_uuid)

    async def status(self, edge_device_id: str, evse_uuid: str) -> list[PlugStatusRecord]:
        cap = self.targets.cap_a(evse_uuid)
        return [
            PlugStatusRecord(
                time=self.clock.now(),
                plug_uuid=plug,
                plug_label=label,
                evse_uuid=evse_uuid,
                status=PlugStatus.IDLE,
                current_a=ZERO,
                power_w=0.0,
                dyn_current_limit_a=float(self.info.max_current_a if cap is None else cap),
            )
            for plug, label in self.info.plugs
        ]


# --- MQTT 3.1.1, the packets an edge needs ------------------------------------------------------


def _str(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(data)) + data


def _packet(first: int, body: bytes) -> bytes:
    length, out = len(body), bytearray([first])
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out) + body


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return first, await reader.readexactly(length)


class LiteLink:
    """The :class:`~fuseguard.cloud.link.Link` an EdgeCloudAgent uses, on a bare asyncio stream."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        on_message: Callable[[LinkMessage], Awaitable[None]],
        will_factory: Callable[[], LastWill],
        on_connect: Callable[[], Awaitable[None]],
        keepalive_s: int = 300,
    ) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.on_message, self.will_factory, self.on_connect = on_message, will_factory, on_connect
        self.keepalive_s = keepalive_s
        self._writer: asyncio.StreamWriter | None = None
        self._up = asyncio.Event()
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._subscriptions: dict[str, int] = {}

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    async def wait_connected(self, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            await self._up.wait()

    def _send(self, data: bytes) -> None:
        if self._writer is None or not self._up.is_set():
            raise LinkDownError(f"{self.client_id}: not connected")
        self._writer.write(data)

    async def _request(self, first: int, body: bytes, packet_id: int) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting[packet_id] = future
        try:
            self._send(_packet(first, body))
            async with asyncio.timeout(10):
                await future
        except TimeoutError as err:
            raise LinkTimeoutError(f"{self.client_id}: no answer to packet {packet_id}") from err
        finally:
            self._waiting.pop(packet_id, None)

    def _packet_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        packet_id = self._packet_id()
        body = _str(topic) + struct.pack("!H", packet_id) + payload
        await self._request(0x32 | int(retain), body, packet_id)

    async def subscribe(self, topic_filter: str, *, qos: int = 1) -> None:
        self._subscriptions[topic_filter] = qos
        if self.connected:
            packet_id = self._packet_id()
            body = struct.pack("!H", packet_id) + _str(topic_filter) + bytes([qos])
            await self._request(0x82, body, packet_id)

    def _connect_packet(self) -> bytes:
        will = self.will_factory()
        flags = 0x02 | 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", self.keepalive_s)
        return _packet(0x10, body + _str(self.client_id) + _str(will.topic) + _str(will.payload))

    async def run(self) -> None:
        """One connection (the agent's supervisor reconnects when it ends)."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        helpers: list[asyncio.Task[None]] = []
        try:
            writer.write(self._connect_packet())
            first, body = await _read_packet(reader)
            if first != 0x20 or body[1] != 0:
                raise LinkDownError(f"{self.client_id}: connection refused ({body!r})")
            self._writer = writer
            self._up.set()
            reading = asyncio.create_task(self._read(reader))
            helpers += [reading, asyncio.create_task(self._ping())]
            for topic_filter, qos in list(self._subscriptions.items()):
                await self.subscribe(topic_filter, qos=qos)
            await self.on_connect()
            await reading
        finally:
            self._up.clear()
            self._writer = None
            for task in helpers:
                task.cancel()
            writer.close()

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive_s / 2)
            self._send(b"\xc0\x00")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            first, body = await _read_packet(reader)
            kind = first & 0xF0
            if kind == 0x30:
                await self._on_publish(first, body)
            elif kind in (0x40, 0x90):  # PUBACK, SUBACK
                future = self._waiting.get(struct.unpack("!H", body[:2])[0])
                if future is not None and not future.done():
                    future.set_result(None)

    async def _on_publish(self, first: int, body: bytes) -> None:
        (topic_len,) = struct.unpack("!H", body[:2])
        topic, rest = body[2 : 2 + topic_len].decode(), body[2 + topic_len :]
        if (first >> 1) & 3:
            self._send(_packet(0x40, rest[:2]))
            rest = rest[2:]
        await self.on_message(LinkMessage(topic, rest, bool(first & 1)))


class LiteAgent(EdgeCloudAgent):
    """An EdgeCloudAgent on a :class:`LiteLink`, counting the acks it sends."""

    def __init__(self, host: str, port: int, prefix: str, i: int, clock: RealClock) -> None:
        info = evse_info(prefix, i)
        super().__init__(
            f"mqtt://{host}:{port}", edge_id(i), None, None, MemoryBackend(info, clock), [info],
            clock, status_interval_s=3600.0, topic_prefix=prefix,
        )  # fmt: skip
        self.link = LiteLink(  # type: ignore[assignment]
            host, port, f"fuseguard-edge-{self.edge_device_id}",
            self._on_message, self._will, self._on_connect,
        )  # fmt: skip
        self.acks: dict[str, int] = {"received": 0, "rejected": 0}
        self.connects = 0

    async def _on_connect(self) -> None:
        self.connects += 1
        await super()._on_connect()

    async def handle_command(self, command: CommandMessage) -> AckMessage:
        ack = await super().handle_command(command)
        self.acks[ack.state] += 1
        return ack


async def _serve(host: str, port: int, prefix: str, first: int, count: int) -> None:
    clock = RealClock()
    agents = [LiteAgent(host, port, prefix, i, clock) for i in range(first, first + count)]
    tasks = []
    for start in range(0, count, 250):  # in waves: no SYN flood on the broker's backlog
        wave = agents[start : start + 250]
        tasks += [asyncio.create_task(a.run()) for a in wave]
        await asyncio.gather(*(a.wait_connected(120) for a in wave))
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        if line.strip() == "stats":
            totals = {"received": 0, "rejected": 0, "connected": 0, "reconnects": 0}
            for agent in agents:
                totals["received"] += agent.acks["received"]
                totals["rejected"] += agent.acks["rejected"]
                totals["connected"] += int(agent.link.connected)
                totals["reconnects"] += agent.connects - 1
            print(json.dumps(totals), flush=True)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True, help="HOST:PORT")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    host, port = args.broker.rsplit(":", 1)
    asyncio.run(_serve(host, int(port), args.prefix, args.first, args.count))


if __name__ == "__main__":
    main()
