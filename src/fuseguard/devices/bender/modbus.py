"""The Modbus side of a Bender CC612/613 (devices.md 4.3): the link and the register decoding.

Reads are one request per documented contiguous range: 104-112 (status, errors), 122 (CP
state), 200-227 (meter), 705-719 (session), 1000 (limit). 104-112 and 122 are not merged: 113-119
are not documented and a device may answer them with ILLEGAL DATA ADDRESS (the virtual device
does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pymodbus.client import AsyncModbusTcpClient

from fuseguard.control.ports import DeviceConnectionError, DeviceResponseError
from fuseguard.devices.bender.checks import MAX_PLAUSIBLE_CURRENT_A
from fuseguard.devices.http import garbage_message
from fuseguard.devices.modbus import modbus_exchange
from fuseguard.model.phases import Phases
from fuseguard.model.status import CpState, OcppState, cp_from_register_122
from fuseguard.wire.bender import ERROR_BITS
from fuseguard.wire.bender import BenderRegister as Reg
from fuseguard.wire.modbus import RegisterBlock, RegisterDecodeError

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class BenderModbusState:
    """The registers one :meth:`BenderCharger.read` fetches, decoded."""

    ocpp_state: OcppState
    cp_state: CpState
    errors: tuple[str, ...]
    current_a: Phases | None
    power_w: float | None
    energy_wh: float | None
    signalled_current_a: int
    max_current_a: int
    session_energy_wh: int
    charging_duration_s: int
    limit_a: int

    @classmethod
    def decode(
        cls,
        status: RegisterBlock,
        cp: RegisterBlock,
        meter: RegisterBlock,
        session: RegisterBlock,
        limit: RegisterBlock,
    ) -> BenderModbusState:
        """Decode the blocks 104-112, 122, 200-227, 705-719, 1000; raises
        :class:`RegisterDecodeError` for values outside their documented range (garbage)."""
        try:
            ocpp = OcppState.from_ordinal(status.u16(Reg.OCPP_STATE))
            cp_state = cp_from_register_122(cp.u16(Reg.CP_STATE))
        except ValueError as err:
            raise RegisterDecodeError(str(err)) from err
        errors = tuple(
            name
            for (register, bit), name in ERROR_BITS.items()
            if status.u16(register) & (1 << bit)
        )
        amps: list[float] = []
        for i in range(3):
            milli = meter.u32_or_none(Reg.ENERGY_L1 + 12 + 2 * i)
            if milli is None:
                break
            amps.append(milli / 1000.0)
        current = Phases.of(amps) if len(amps) == 3 else None
        if current is not None and current.max > MAX_PLAUSIBLE_CURRENT_A:
            msg = f"phase currents {current.as_list()} A are implausible"
            raise RegisterDecodeError(msg)
        power = meter.u32_or_none(Reg.ENERGY_L1 + 20)
        energy = meter.u32_or_none(Reg.ENERGY_L1 + 18)
        signalled = session.u16(Reg.SIGNALLED_CURRENT)
        max_current = session.u16(Reg.MAX_CURRENT)
        limit_a = limit.u16(Reg.HEMS_CURRENT_LIMIT)
        for name, value in (("signalled current", signalled), ("max current", max_current)):
            if value > MAX_PLAUSIBLE_CURRENT_A:
                msg = f"{name} {value} A is implausible"
                raise RegisterDecodeError(msg)
        return cls(
            ocpp_state=ocpp,
            cp_state=cp_state,
            errors=errors,
            current_a=current,
            power_w=None if power is None else float(power),
            energy_wh=None if energy is None else float(energy),
            signalled_current_a=signalled,
            max_current_a=max_current,
            session_energy_wh=session.u32(Reg.SESSION_ENERGY),
            charging_duration_s=session.u32(Reg.CHARGING_DURATION),
            limit_a=limit_a,
        )


@dataclass(kw_only=True, eq=False)
class BenderModbusLink:
    """One connector's Modbus TCP connection: one exchange at a time, each under a timeout.

    pymodbus failures map onto the shallow tree: no answer -> ``DeviceTimeoutError``, refused or
    dropped -> ``DeviceConnectionError``, an exception response or a protocol error ->
    ``DeviceResponseError``. After any failure the connection is dropped and the next exchange
    reconnects. One attempt per call; the driver retries connection errors.
    """

    device: str
    host: str
    port: int
    unit_id: int
    timeout_s: float
    _client: AsyncModbusTcpClient | None = field(default=None, init=False, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    async def read(self, address: int, count: int) -> RegisterBlock:
        """Read ``count`` holding registers from ``address``."""

        async def exchange() -> RegisterBlock:
            client = await self._connected()
            response = await client.read_holding_registers(
                address, count=count, device_id=self.unit_id
            )
            if response.isError():
                msg = f"{self.device}: Modbus read {address}+{count} refused: {response}"
                raise DeviceResponseError(msg)
            registers = list(response.registers)
            if len(registers) != count:
                reason = f"read {address}+{count} returned {len(registers)} registers"
                raise DeviceResponseError(garbage_message(self.device, reason))
            return RegisterBlock(address, registers)

        return await self._guarded(exchange)

    async def write(self, address: int, values: list[int]) -> None:
        """Write ``values`` to consecutive holding registers from ``address``."""

        async def exchange() -> None:
            client = await self._connected()
            response = await client.write_registers(address, values, device_id=self.unit_id)
            if response.isError():
                msg = f"{self.device}: Modbus write {address}={values} refused: {response}"
                raise DeviceResponseError(msg)

        await self._guarded(exchange)

    def close(self) -> None:
        """Drop the connection (the next exchange reconnects)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _connected(self) -> AsyncModbusTcpClient:
        if self._client is None:
            self._client = AsyncModbusTcpClient(
                self.host, port=self.port, timeout=self.timeout_s, retries=0, reconnect_delay=0
            )
        if not self._client.connected:
            ok = await self._client.connect()
            if not ok:
                self.close()
                msg = f"{self.device}: Modbus connection to port {self.port} failed"
                raise DeviceConnectionError(msg)
        return self._client

    async def _guarded(self, exchange: Callable[[], Awaitable[T]]) -> T:
        """One exchange under ``asyncio.timeout``, pymodbus errors mapped, serialised."""
        async with self._lock, modbus_exchange(self.device, self.timeout_s, self.close):
            return await exchange()


__all__ = ["BenderModbusLink", "BenderModbusState"]
