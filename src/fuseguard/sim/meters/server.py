"""Modbus TCP server of a virtual meter (pymodbus ``SimDevice``, like the virtual Bender's).

``unit_id`` 0 answers every unit id (pymodbus' catch-all); else only that one, and another unit
id gets GATEWAY TARGET DEVICE FAILED TO RESPOND (0x0B), as from a TCP gateway. The register
space is one shared scratch block per declared range; on every read the action checks that the
request lies inside a range of its function code (else ILLEGAL DATA ADDRESS), passes the fault
gate (offline: held; slow: delayed), and renders the device's current words (or garbage) into the
block right before pymodbus answers. Writes are refused (ILLEGAL FUNCTION): a meter is read-only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

import structlog
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from fuseguard.sim.meters.physics import GARBAGE_WORD, MeterFaults

log = structlog.get_logger(__name__)


class RegisterDevice(Protocol):
    """What the server needs from a virtual meter."""

    name: str
    faults: MeterFaults

    def ranges(self) -> Mapping[int, tuple[tuple[int, int], ...]]:
        """Function code -> answered address ranges ``(start, stop)``."""

    def registers(self, function_code: int) -> dict[int, int]:
        """The current words for ``function_code``."""


def _merged(device: RegisterDevice) -> list[tuple[int, int]]:
    spans = sorted(span for spans in device.ranges().values() for span in spans)
    merged: list[tuple[int, int]] = []
    for start, stop in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


class MeterModbusServer:
    """Serve one virtual meter on ``host:port`` (port 0: any free port, see ``port``)."""

    def __init__(
        self, device: RegisterDevice, host: str = "127.0.0.1", port: int = 502, unit_id: int = 0
    ) -> None:
        self.device = device
        self._ranges = device.ranges()  # fixed for the device's life
        self.host = host
        self.port = port
        simdata = [
            SimData(start, count=stop - start, datatype=DataType.REGISTERS)
            for start, stop in _merged(device)
        ]
        devices = [SimDevice(id=unit_id, simdata=simdata, action=self._action)]
        if unit_id != 0:
            devices.append(SimDevice(id=0, simdata=simdata, action=self._no_such_unit))
        self._server = ModbusTcpServer(devices, address=(host, port))

    @staticmethod
    async def _no_such_unit(
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        return ExcCodes.GATEWAY_NO_RESPONSE

    def _inside(self, function_code: int, address: int, count: int) -> bool:
        spans = self._ranges.get(function_code, ())
        return any(start <= address and address + count <= stop for start, stop in spans)

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION
        if not self._inside(function_code, address, count):
            return ExcCodes.ILLEGAL_ADDRESS
        faults = self.device.faults
        if not await faults.pass_through():
            return ExcCodes.DEVICE_FAILURE
        words = {} if faults.garbage else self.device.registers(function_code)
        for a in range(address, address + count):
            index = a - start_address
            if 0 <= index < len(current_registers):
                current_registers[index] = GARBAGE_WORD if faults.garbage else words.get(a, 0)
        return None

    async def start(self) -> None:
        """Listen; ``port`` holds the bound port afterwards."""
        logging.getLogger("pymodbus").setLevel(logging.WARNING)
        await self._server.serve_forever(background=True)
        sockets = getattr(self._server.transport, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("virtual meter listening", device=self.device.name, port=self.port)

    async def close(self) -> None:
        """Release held requests, stop listening, drop connections."""
        self.device.faults.close()
        await self._server.shutdown()  # type: ignore[no-untyped-call]
