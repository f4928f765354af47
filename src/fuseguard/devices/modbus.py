"""The one pymodbus error mapping of the Modbus TCP drivers (Bender charger, Modbus/SunSpec meters).

:func:`modbus_exchange` wraps one request/response exchange: it bounds it in time and maps every
way it can fail onto the shallow error tree of :mod:`fuseguard.control.ports`, dropping the
connection first (``drop``) so the next exchange reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from fuseguard.control.ports import DeviceConnectionError, DeviceResponseError, DeviceTimeoutError
from fuseguard.devices.http import garbage_message


@contextlib.asynccontextmanager
async def modbus_exchange(
    device: str, timeout_s: float, drop: Callable[[], None]
) -> AsyncIterator[None]:
    """One exchange within ``timeout_s`` (+0.5 s for pymodbus' own timer to fire first).

    No answer in time -> :class:`DeviceTimeoutError`; refused or reset ->
    :class:`DeviceConnectionError`; a Modbus protocol error -> :class:`DeviceResponseError`
    ("garbage answer").
    """
    try:
        async with asyncio.timeout(timeout_s + 0.5):
            yield
    except TimeoutError as err:
        drop()
        msg = f"{device}: no Modbus answer within {timeout_s:g} s"
        raise DeviceTimeoutError(msg) from err
    except ModbusIOException as err:
        drop()
        msg = f"{device}: no Modbus answer: {err}"
        raise DeviceTimeoutError(msg) from err
    except (ConnectionException, OSError) as err:
        drop()
        msg = f"{device}: Modbus connection failed: {err}"
        raise DeviceConnectionError(msg) from err
    except ModbusException as err:
        drop()
        raise DeviceResponseError(garbage_message(device, f"Modbus protocol error: {err}")) from err


__all__ = ["modbus_exchange"]
