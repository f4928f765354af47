"""Modbus TCP twin of the local API (CLEMAP "Realtime energy data", devices.md 1.8).

Unit id 1, holding registers, 0-based addresses, every value a float32 in two registers,
big-endian (high word first):

=====  ==========================  =====  ======================================
Reg    Value                       Unit   Access
=====  ==========================  =====  ======================================
19000  voltage L1-N / L2-N / L3-N  V      read (19000, 19002, 19004)
19006  (undocumented)              -      read, always 0.0 (19006-19011)
19012  current L1 / L2 / L3        A      read (19012, 19014, 19016)
19018  current sum I1+I2+I3        A      read
19020  active power L1 / L2 / L3   W      read (19020, 19022, 19024)
19026  total active power          W      read
19028  apparent power L1 / L2 / L3 VA     read (19028, 19030, 19032)
19034  total apparent power        VA     read
19036  reactive power L1 / L2 / L3 var    read (19036, 19038, 19040)
19042  total reactive power        var    read
19044  (reserved)                  -      read 0.0 (19044-19049)
19050  ActivePowerActivation       0/1    read/write
19052  FallbackCurrentLimit        A      read/write
19054  CurrentLimit                A      read/write (reads the fallback after expiry)
19056  keep-alive                  -      write anything; reads 0.0
=====  ==========================  =====  ======================================

Writes (FC16, or FC6 for the keep-alive) share state with REST through the same
:class:`~fuseguard.control.flex.FlexManagement`; every write to 19050-19057 also counts as
keep-alive. A value must be written whole (both registers); a write to the read-only range, a
torn float, NaN, a negative or absurd current, or an activation other than 0.0/1.0 is answered
with a Modbus exception (02 illegal address / 03 illegal value) and changes nothing.

Access control (Modbus has no authentication): a peer outside ``allowed_hosts`` (IP/CIDR, default
loopback only) is disconnected on connect; with ``read_only`` every write is answered with
exception 01 (illegal function). At most :data:`MAX_CONNECTIONS` clients at once, at most
:data:`MAX_CONNECTIONS_PER_PEER` of them from one peer (``max_connections_per_peer``: a peer in
``allowed_hosts`` cannot lock the EMS out), and a connection idle for :data:`IDLE_TIMEOUT_S` is
closed. Every write, accepted or not, is logged with the peer; refused connects are logged once
per burst of each reason and peer host (``suppressed`` counts the others).
"""

from __future__ import annotations

import asyncio
import errno
import math
import struct
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import structlog
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from fuseguard.api.access import LOOPBACK_HOSTS, HostAllowList
from fuseguard.api.local_models import LiveDataSource
from fuseguard.control.flex import FlexManagement, check_current_limit
from fuseguard.serving.peers import PeerConnections
from fuseguard.serving.throttle import KeyedLogThrottle

log = structlog.get_logger(__name__)

UNIT_ID = 1
FIRST_REGISTER = 19000
REG_VOLTAGE = 19000
REG_CURRENT = 19012
REG_CURRENT_SUM = 19018
REG_ACTIVE_POWER = 19020
REG_ACTIVE_POWER_TOTAL = 19026
REG_APPARENT_POWER = 19028
REG_APPARENT_POWER_TOTAL = 19034
REG_REACTIVE_POWER = 19036
REG_REACTIVE_POWER_TOTAL = 19042
REG_ACTIVATION = 19050
REG_FALLBACK_LIMIT = 19052
REG_CURRENT_LIMIT = 19054
REG_KEEP_ALIVE = 19056
LAST_REGISTER = 19057
REGISTER_COUNT = LAST_REGISTER - FIRST_REGISTER + 1

_FC_WRITE = frozenset({6, 16, 22, 23})
#: Clients served at once; one more is disconnected on connect.
MAX_CONNECTIONS = 16
#: Of those, at most this many from one peer (host).
MAX_CONNECTIONS_PER_PEER = 8
#: A connection without a request for this long is closed.
IDLE_TIMEOUT_S = 30.0

#: The peer ("ip:port") of the request being handled (set per request task by the handler).
_PEER: ContextVar[str] = ContextVar("_PEER", default="?")


def float_to_registers(value: float) -> tuple[int, int]:
    """float32 big-endian, high word first."""
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return hi, lo


def registers_to_float(hi: int, lo: int) -> float:
    """Inverse of :func:`float_to_registers`."""
    value: float = struct.unpack(">f", struct.pack(">HH", hi, lo))[0]
    return value


def _image(flex: FlexManagement, live: LiveDataSource) -> dict[int, float]:
    data = live.live_data()
    settings = flex.settings()
    values: dict[int, float] = {}
    for base, phases in (
        (REG_VOLTAGE, data.voltage_v),
        (REG_CURRENT, data.current_a),
        (REG_ACTIVE_POWER, data.phase_active_power_w()),
        (REG_APPARENT_POWER, data.apparent_power_per_phase_va()),
        (REG_REACTIVE_POWER, data.phase_reactive_power_var()),
    ):
        for i, v in enumerate(phases):
            values[base + 2 * i] = v
    values[REG_CURRENT_SUM] = data.current_sum_a
    values[REG_ACTIVE_POWER_TOTAL] = data.active_power_w
    values[REG_APPARENT_POWER_TOTAL] = data.apparent_power_per_phase_va().total
    values[REG_REACTIVE_POWER_TOTAL] = data.reactive_power_var
    values[REG_ACTIVATION] = 1.0 if settings.activation else 0.0
    values[REG_FALLBACK_LIMIT] = settings.fallback_current_limit_a
    values[REG_CURRENT_LIMIT] = settings.current_limit_a
    values[REG_KEEP_ALIVE] = 0.0
    return values


def _refresh(registers: list[int], start_address: int, values: dict[int, float]) -> None:
    for address, value in values.items():
        offset = address - start_address
        if 0 <= offset < len(registers) - 1:
            v = value if math.isfinite(value) else 0.0
            registers[offset], registers[offset + 1] = float_to_registers(v)


def _apply_write(
    flex: FlexManagement, address: int, values: list[int], peer: str = "?"
) -> ExcCodes | None:
    end = address + len(values)  # exclusive
    if address < REG_ACTIVATION or end > LAST_REGISTER + 1:
        return ExcCodes.ILLEGAL_ADDRESS
    activation: bool | None = None
    limits: dict[int, float] = {}
    for reg in (REG_ACTIVATION, REG_FALLBACK_LIMIT, REG_CURRENT_LIMIT):
        touched = address <= reg + 1 and end > reg
        if not touched:
            continue
        if address > reg or end < reg + 2:
            return ExcCodes.ILLEGAL_ADDRESS  # half a float
        value = registers_to_float(values[reg - address], values[reg + 1 - address])
        if reg == REG_ACTIVATION:
            if value not in (0.0, 1.0):
                return ExcCodes.ILLEGAL_VALUE
            activation = value == 1.0
        else:
            try:
                limits[reg] = check_current_limit(value, "register")
            except ValueError:
                return ExcCodes.ILLEGAL_VALUE
    if activation is None and not limits:
        flex.keep_alive(source=f"modbus {peer}")
        return None
    try:
        flex.update(
            activation=activation,
            fallback_current_limit_a=limits.get(REG_FALLBACK_LIMIT),
            current_limit_a=limits.get(REG_CURRENT_LIMIT),
            source=f"modbus {peer}",
        )
    except OSError:  # the settings could not be saved: nothing changed, the EMS must retry
        return ExcCodes.DEVICE_FAILURE
    return None


class _TwinAction:
    """The SimDevice action: applies writes to the flex state, refreshes registers on access."""

    def __init__(self, flex: FlexManagement, live: LiveDataSource, *, read_only: bool) -> None:
        self._flex = flex
        self._live = live
        self._read_only = read_only

    async def __call__(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if function_code in _FC_WRITE and set_values is not None:
            peer = _PEER.get()
            regs = [int(v) for v in set_values]
            if self._read_only:
                result: ExcCodes | None = ExcCodes.ILLEGAL_FUNCTION
            else:
                result = _apply_write(self._flex, address, regs[:count], peer)
            if result is not None:
                log.info(
                    "modbus_write_rejected",
                    device="modbus-twin",
                    peer=peer,
                    reason="read-only" if self._read_only else result.name,
                    address=address,
                    count=count,
                )
                return result
            log.info("modbus_write", device="modbus-twin", peer=peer, address=address, count=count)
        _refresh(current_registers, start_address, _image(self._flex, self._live))
        return None


class _GuardedHandler(ServerRequestHandler):
    """One client connection: allow-list and connection cap on connect, idle timeout, peer."""

    def __init__(self, owner: _GuardedServer) -> None:
        super().__init__(owner, owner.trace_packet, owner.trace_pdu, owner.trace_connect)  # type: ignore[no-untyped-call]
        self._guard = owner
        self.peer = "?"
        self._counted: str | None = None  # the host counted in the server's peer connections
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peername = transport.get_extra_info("peername")
        host = str(peername[0]) if peername else ""
        self.peer = f"{host}:{peername[1]}" if peername else "?"
        reason = None
        guard = self._guard
        if not guard.allowed.allows(host):
            reason = "peer not in allowed_hosts"
        elif len(guard.active_connections) > guard.max_connections:
            reason = f"more than {guard.max_connections} connections"
        elif not guard.peers.try_open(host):
            reason = f"more than {guard.peers.max_per_peer} connections from this peer"
        else:
            self._counted = host
        if reason is not None:
            # a connect loop is one line per burst (and per peer), not one per connect
            guard.refused_log.warning(
                log, "modbus_peer_refused", reason=reason, host=host, device="modbus-twin",
                peer=self.peer,
            )  # fmt: skip
            self.close()
            return
        self._touch()

    def data_received(self, data: bytes) -> None:
        self._touch()
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        if self._counted is not None:
            self._guard.peers.release(self._counted)
            self._counted = None
        super().connection_lost(exc)

    async def handle_request(self) -> None:
        token = _PEER.set(self.peer)
        try:
            await super().handle_request()  # type: ignore[no-untyped-call]
        finally:
            _PEER.reset(token)

    def _touch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = self.loop.call_later(self._guard.idle_timeout_s, self._on_idle)

    def _on_idle(self) -> None:
        log.info("modbus_idle_closed", device="modbus-twin", peer=self.peer, reason="idle")
        self.close()


class _GuardedServer(ModbusTcpServer):
    """A Modbus TCP server whose connections are :class:`_GuardedHandler`."""

    def __init__(
        self,
        devices: list[SimDevice],
        address: tuple[str, int],
        *,
        allowed: HostAllowList,
        max_connections: int,
        max_connections_per_peer: int,
        idle_timeout_s: float,
    ) -> None:
        super().__init__(devices, address=address)
        self.allowed = allowed
        self.max_connections = max_connections
        self.peers = PeerConnections(max_connections_per_peer)
        self.idle_timeout_s = idle_timeout_s
        self.refused_log = KeyedLogThrottle()

    def callback_new_connection(self) -> Any:
        return _GuardedHandler(self)


@dataclass(eq=False)
class ModbusTwinHandle:
    """A running Modbus twin."""

    server: ModbusTcpServer
    host: str
    port: int

    async def close(self) -> None:
        """Stop the server and close client connections."""
        await self.server.shutdown()  # type: ignore[no-untyped-call]
        log.info("modbus_twin_stopped", device=f"{self.host}:{self.port}", reason="close")


async def serve_modbus_twin(
    flex: FlexManagement,
    live: LiveDataSource,
    host: str,
    port: int,
    *,
    allowed_hosts: Iterable[str] = LOOPBACK_HOSTS,
    read_only: bool = False,
    max_connections: int = MAX_CONNECTIONS,
    max_connections_per_peer: int = MAX_CONNECTIONS_PER_PEER,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
) -> ModbusTwinHandle:
    """Serve the register map above on ``host:port`` (0 = free port), unit 1.

    Only peers in ``allowed_hosts`` (IP/CIDR; default loopback) may connect, each with at most
    ``max_connections_per_peer`` of the ``max_connections``; ``read_only`` refuses every write.
    A busy port raises ``OSError`` naming it.
    """
    allowed = HostAllowList.of(allowed_hosts)
    device = SimDevice(
        id=UNIT_ID,
        simdata=[SimData(FIRST_REGISTER, count=REGISTER_COUNT, datatype=DataType.REGISTERS)],
        action=_TwinAction(flex, live, read_only=read_only).__call__,
    )
    # Catch-all for other unit ids: every address invalid -> exception 02, no tracebacks.
    catch_all = SimDevice(id=0, simdata=[SimData(0, count=1, datatype=DataType.INVALID)])
    server = _GuardedServer(
        [device, catch_all],
        (host, port),
        allowed=allowed,
        max_connections=max_connections,
        max_connections_per_peer=max_connections_per_peer,
        idle_timeout_s=idle_timeout_s,
    )
    try:
        await server.serve_forever(background=True)
    except RuntimeError as err:  # pymodbus: "Could not start listen" (port busy, bad address)
        raise OSError(errno.EADDRINUSE, "address in use or not available") from err
    sockets = getattr(server.transport, "sockets", None) or []
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    log.info(
        "modbus_twin_started",
        device=f"{host}:{bound}",
        reason="serve_modbus_twin",
        allowed_hosts=[str(n) for n in allowed.networks],
        read_only=read_only,
    )
    return ModbusTwinHandle(server, host, bound)
