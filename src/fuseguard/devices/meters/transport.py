"""One Modbus TCP connection to a meter: every read goes through :meth:`ModbusTransport.request`.

pymodbus client with its own retries off; every exchange runs under ``asyncio.timeout`` and is
serialised by a lock; failures map onto the shallow tree of :mod:`fuseguard.control.ports`:
refused/reset -> ``DeviceConnectionError`` (retried once on a fresh connection: a meter or gateway
that dropped an idle connection); no answer within ``request_timeout_s`` -> ``DeviceTimeoutError``;
a Modbus exception response or a reply of the wrong size -> ``DeviceResponseError``. Every message
names the device.
"""

from __future__ import annotations

import asyncio

import structlog
from pymodbus.client import AsyncModbusTcpClient

from fuseguard.control.ports import (
    DeviceConnectionError,
    DeviceError,
    DeviceResponseError,
    DeviceTimeoutError,
)
from fuseguard.devices.modbus import modbus_exchange

log = structlog.get_logger(__name__)


class ModbusTransport:
    """Reads holding (function 03) or input (function 04) registers of one unit."""

    def __init__(
        self,
        host: str,
        port: int = 502,
        unit_id: int = 1,
        *,
        request_timeout_s: float = 2.0,
        name: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.request_timeout_s = request_timeout_s
        self.name = name or f"meter@{host}:{port}/{unit_id}"
        self.last_error: str | None = None
        self._client: AsyncModbusTcpClient | None = None
        self._lock = asyncio.Lock()

    async def request(self, function_code: int, address: int, count: int) -> list[int]:
        """``count`` registers from ``address``; raises a ``DeviceError`` naming the device."""
        try:
            try:
                return await self._exchange(function_code, address, count)
            except DeviceTimeoutError:
                raise
            except DeviceConnectionError:
                return await self._exchange(function_code, address, count)  # one fresh connection
        except DeviceError as err:
            self.last_error = str(err)
            log.warning(
                "meter request failed",
                device=self.name,
                op=f"read fc{function_code} {address}+{count}",
                reason=str(err),
            )
            raise

    async def _exchange(self, function_code: int, address: int, count: int) -> list[int]:
        async with self._lock, modbus_exchange(self.name, self.request_timeout_s, self._drop):
            client = await self._connected()
            if function_code == 4:
                response = await client.read_input_registers(
                    address, count=count, device_id=self.unit_id
                )
            elif function_code == 3:
                response = await client.read_holding_registers(
                    address, count=count, device_id=self.unit_id
                )
            else:
                msg = f"{self.name}: function code {function_code} is not a register read"
                raise ValueError(msg)
        if response.isError():
            msg = f"{self.name}: read fc{function_code} {address}+{count} refused: {response}"
            raise DeviceResponseError(msg)
        registers = list(response.registers)
        if len(registers) != count:
            msg = f"{self.name}: read {address}+{count} returned {len(registers)} registers"
            raise DeviceResponseError(msg)
        return registers

    async def _connected(self) -> AsyncModbusTcpClient:
        if self._client is None:
            self._client = AsyncModbusTcpClient(
                self.host,
                port=self.port,
                timeout=self.request_timeout_s,
                retries=0,
                reconnect_delay=0,
            )
        if not self._client.connected:
            ok = await self._client.connect()
            if not ok:
                self._drop()
                msg = f"{self.name}: Modbus connection to {self.host}:{self.port} failed"
                raise DeviceConnectionError(msg)
        return self._client

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def close(self) -> None:
        """Close the connection; never raises."""
        self._drop()


__all__ = ["ModbusTransport"]
