"""Serve a virtual Bender controller on the wire: legacy REST (uvicorn) + Modbus TCP per connector.

:func:`serve_bender` only serves; advancing the model is the job of the
:class:`~fuseguard.sim.site.SiteModel` the connectors were added to (``SiteModel.run``), so the
demo can run several chargers on one site in one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field

import structlog
import uvicorn

from fuseguard.serving import EmbeddedServer, bind_socket
from fuseguard.sim.bender import BenderController
from fuseguard.sim.bender_modbus import BenderModbusServer
from fuseguard.sim.bender_rest import create_bender_rest_app
from fuseguard.sim.bender_wire import WireGate

log = structlog.get_logger(__name__)


@dataclass
class BenderServerHandle:
    """A running virtual Bender: bound ports and :meth:`close`."""

    controller: BenderController
    host: str
    rest_port: int
    modbus_ports: list[int]
    _rest: EmbeddedServer
    _rest_task: asyncio.Task[None]
    _modbus: list[BenderModbusServer]
    _closing: asyncio.Event
    _sock: socket.socket
    _closed: bool = field(default=False)

    @property
    def modbus_port(self) -> int:
        """Modbus port of connector 1."""
        return self.modbus_ports[0]

    async def close(self) -> None:
        """Release hanging requests, stop REST and Modbus servers; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._rest.should_exit = True
        for server in self._modbus:
            await server.close()
        try:
            async with asyncio.timeout(5.0):
                await self._rest_task
        except TimeoutError:
            self._rest.force_exit = True
            self._rest_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rest_task
        self._sock.close()
        log.info("virtual bender stopped", device=self.controller.config.cp_id, reason="close")


async def serve_bender(
    controller: BenderController,
    host: str = "127.0.0.1",
    rest_port: int = 80,
    modbus_port: int = 502,
) -> BenderServerHandle:
    """Start the REST app on ``rest_port`` and one Modbus server per connector.

    Connector 2 listens on ``modbus_port + 1`` like the real controller (with ``modbus_port=0``
    every connector gets its own ephemeral port). Port 0 binds an ephemeral port; the handle
    reports the bound ports.
    """
    closing = asyncio.Event()
    gates = [WireGate(c, closing) for c in controller.connectors]
    app = create_bender_rest_app(controller, gate=gates[0])
    config = uvicorn.Config(
        app,
        host=host,
        port=rest_port,
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
        timeout_keep_alive=controller.config.rest_keepalive_s,
    )
    rest = EmbeddedServer(config)
    sock = bind_socket(host, rest_port)
    bound_rest = int(sock.getsockname()[1])
    rest_task = asyncio.create_task(
        rest.serve(sockets=[sock]), name=f"bender-rest-{controller.config.cp_id}"
    )
    modbus: list[BenderModbusServer] = []
    try:
        for i, connector in enumerate(controller.connectors):
            port = modbus_port + i if modbus_port else 0
            server = BenderModbusServer(connector, gates[i], host=host, port=port)
            await server.start()
            modbus.append(server)
    except BaseException:
        closing.set()
        rest.should_exit = True
        for server in modbus:
            await server.close()
        with contextlib.suppress(BaseException):
            await rest_task
        sock.close()
        raise
    log.info(
        "virtual bender serving",
        device=controller.config.cp_id,
        rest_port=bound_rest,
        modbus_ports=[s.port for s in modbus],
        firmware=controller.config.firmware.value,
    )
    return BenderServerHandle(
        controller=controller,
        host=host,
        rest_port=bound_rest,
        modbus_ports=[s.port for s in modbus],
        _rest=rest,
        _rest_task=rest_task,
        _modbus=modbus,
        _closing=closing,
        _sock=sock,
    )
