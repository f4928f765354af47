"""The Modbus side of a Bender CC612/613 (devices.md 4.3): the link and the register decoding.

Reads are one request per documented contiguous range: 104-112 (status, errors), 122 (CP
state), 200-227 (meter), 705-719 (session), 1000 (limit). 104-112 and 122 are not merged: 113-119
are not documented and a device may answer them with ILLEGAL DATA ADDRESS (the virtual device
does).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fuseguard.devices.bender.checks import MAX_PLAUSIBLE_CURRENT_A
from fuseguard.devices.modbus import ModbusTcpClient
from fuseguard.model.phases import Phases
from fuseguard.model.status import CpState, OcppState, cp_from_register_122
from fuseguard.wire.bender import ERROR_BITS
from fuseguard.wire.bender import BenderRegister as Reg
from fuseguard.wire.modbus import RegisterBlock, RegisterDecodeError


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

    Over the lean :class:`~fuseguard.devices.modbus.ModbusTcpClient` (the poll's hot path):
    no answer -> ``DeviceTimeoutError``, refused or dropped -> ``DeviceConnectionError``, an
    exception response or a malformed answer -> ``DeviceResponseError``. After a timeout, a
    dropped connection or garbage the next exchange reconnects. One attempt per call; the driver
    retries connection errors.
    """

    device: str
    host: str
    port: int
    unit_id: int
    timeout_s: float
    _client: ModbusTcpClient | None = field(default=None, init=False, repr=False)

    async def read(self, address: int, count: int) -> RegisterBlock:
        """Read ``count`` holding registers from ``address``."""
        return RegisterBlock(address, await self.client().read_holding_registers(address, count))

    async def write(self, address: int, values: list[int]) -> None:
        """Write ``values`` to consecutive holding registers from ``address``."""
        await self.client().write_registers(address, values)

    def close(self) -> None:
        """Drop the connection (the next exchange reconnects)."""
        if self._client is not None:
            self._client.close()

    def client(self) -> ModbusTcpClient:
        """The lean client (made on first use): the driver's hot path calls it directly."""
        if self._client is None:
            self._client = ModbusTcpClient(
                device=self.device,
                host=self.host,
                port=self.port,
                unit_id=self.unit_id,
                timeout_s=self.timeout_s,
            )
        return self._client


__all__ = ["BenderModbusLink", "BenderModbusState"]
