"""Modbus TCP server of the virtual Bender controller (pymodbus 3.16 ``SimDevice``).

One server per connector (connector 2 listens on base port + 1). Every unit id is answered
(``SimDevice(id=0)`` is pymodbus' catch-all). Reads render the connector's live registers
(:meth:`BenderConnector.modbus_registers`) into the block right before pymodbus answers; writes go
to :meth:`BenderConnector.write_registers` first and are refused with ILLEGAL DATA ADDRESS
(read-only register) or ILLEGAL DATA VALUE (bad value). Addresses outside the documented ranges
answer ILLEGAL DATA ADDRESS.
"""

from __future__ import annotations

import logging

import structlog
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from fuseguard.sim.bender import BenderConnector, RegisterWriteError
from fuseguard.sim.bender_wire import WireGate
from fuseguard.wire.bender import REGISTER_RANGES
from fuseguard.wire.modbus import fill_registers

log = structlog.get_logger(__name__)

#: What a connector under the ``garbage`` fault answers for every register.
GARBAGE_WORD = 0xBEEF


def _simdata() -> list[SimData]:
    return [
        SimData(first, count=last - first + 1, datatype=DataType.REGISTERS)
        for first, last in REGISTER_RANGES
    ]


class BenderModbusServer:
    """The Modbus TCP server of one connector."""

    def __init__(
        self, connector: BenderConnector, gate: WireGate, host: str = "127.0.0.1", port: int = 502
    ) -> None:
        self.connector = connector
        self.gate = gate
        self.host = host
        self.requested_port = port
        self.port = port
        device = SimDevice(id=0, simdata=_simdata(), action=self._action)
        self._server = ModbusTcpServer(device, address=(host, port))

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if not await self.gate.pass_through():
            return ExcCodes.DEVICE_FAILURE
        if set_values is None:
            if self.gate.garbage:
                for i in range(count):
                    current_registers[address - start_address + i] = GARBAGE_WORD
                return None
            fill_registers(
                current_registers,
                start_address,
                self.connector.modbus_registers(),
                first=address,
                last=address + count - 1,
            )
            return None
        words = [int(v) for v in set_values]
        try:
            self.connector.write_registers(address, words)
        except RegisterWriteError as err:
            log.warning(
                "modbus write refused",
                device=self.connector.name,
                reason=str(err),
                function_code=function_code,
            )
            return ExcCodes.ILLEGAL_ADDRESS if err.illegal_address else ExcCodes.ILLEGAL_VALUE
        return None

    async def start(self) -> None:
        """Listen; ``port`` holds the bound port afterwards (useful with port 0)."""
        logging.getLogger("pymodbus").setLevel(logging.WARNING)
        await self._server.serve_forever(background=True)
        transport = self._server.transport
        sockets = getattr(transport, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("modbus server listening", device=self.connector.name, port=self.port)

    async def close(self) -> None:
        """Stop listening and drop the connections."""
        await self._server.shutdown()  # type: ignore[no-untyped-call]
