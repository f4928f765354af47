"""Legacy REST text API of the virtual Bender controller, plus its admin API under ``/sim``.

Wire API (read-only, like the device):

- ``GET /rest/full_state``: ``text/plain``, one ``key:value`` per line in the firmware's order.
- ``GET /rest/<key>``: ``key:value`` for one key; unknown key -> 404.

Auth (``RestAuth``): none (as shipped, "without UID"), the seed's ``Username``/``Password``
headers, or HTTP Basic; wrong or missing credentials -> 401.

Admin API (never affected by wire faults), JSON:

- ``GET /sim/state``
- ``POST /sim/connectors/{n}/plug`` (vehicle parameters), ``POST .../unplug``,
  ``POST .../authorize`` (``{"uid": ...}``), ``POST .../stop``, ``POST .../soc``
  (``{"soc": 0.8}``), ``POST .../hems`` (``{"current_a": 16}``)
- ``POST /sim/connectors/{n}/fault`` (``{"kind": "rcd_trip"}``), ``DELETE .../fault[?kind=...]``
- ``POST /sim/fault`` / ``DELETE /sim/fault``: the same for every connector
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field, field_validator

from fuseguard.model.faults import DeviceFault
from fuseguard.model.iec import MAX_CHARGE_CURRENT_A
from fuseguard.sim.bender import BenderConnector, BenderController
from fuseguard.sim.bender_config import RestAuth, bender_fault
from fuseguard.sim.bender_panel_api import add_panel_routes
from fuseguard.sim.bender_wire import WireGate
from fuseguard.sim.vehicle import SimVehicle

#: Body served under the ``garbage`` fault: not ``key:value`` text.
GARBAGE_BODY = "\x1b[2J<html><body>EBEE MAINT \x7f\x7f</body>\n#!!? conn_state = ??\n"


class VehicleIn(BaseModel):
    """A vehicle to plug in."""

    phases: int = Field(default=3, ge=1, le=3)
    max_current_a: float = Field(default=16.0, gt=0, le=MAX_CHARGE_CURRENT_A)
    battery_wh: float = Field(default=60_000.0, gt=0)
    soc: float = Field(default=0.5, ge=0, le=1)
    target_soc: float = Field(default=1.0, gt=0, le=1)
    taper_soc: float = Field(default=0.8, ge=0, le=1)
    response_delay_s: float = Field(default=2.0, ge=0, le=30)
    cable_rating_a: int = 32
    name: str = "ev"


class AuthorizeIn(BaseModel):
    """An authorisation (RFID card or backend)."""

    uid: str | None = None


class SocIn(BaseModel):
    """A new state of charge."""

    soc: float = Field(ge=0, le=1)


class HemsIn(BaseModel):
    """A HEMS limit, as if written to register 1000."""

    current_a: float = Field(ge=0, le=0xFFFF)


class FaultIn(BaseModel):
    """A fault to inject (one of ``fuseguard.sim.bender.BENDER_FAULTS``)."""

    kind: DeviceFault
    slow_delay_s: float | None = Field(default=None, gt=0, le=120)

    _bender = field_validator("kind")(bender_fault)


class ConnectorOut(BaseModel):
    """What the admin API reports per connector."""

    connector_id: int
    cp_state: str
    ocpp_state: str
    auth_state: str
    sig_current_a: float
    hems_limit_a: float | None
    effective_hems_limit_a: float
    safe_current_a: int
    comm_timeout_s: int
    watchdog_expired: bool
    current_a: list[float]
    power_w: float
    meter_wh: float
    transaction_wh: float
    vehicle_soc: float | None
    faults: list[str]


def _connector_out(c: BenderConnector) -> ConnectorOut:
    return ConnectorOut(
        connector_id=c.connector_id,
        cp_state=c.cp_state.value,
        ocpp_state=c.ocpp_state.value,
        auth_state=c.auth_state.value,
        sig_current_a=c.sig_current_a,
        hems_limit_a=c.hems_limit_a,
        effective_hems_limit_a=c.effective_hems_limit_a,
        safe_current_a=c.safe_current_a,
        comm_timeout_s=c.comm_timeout_s,
        watchdog_expired=c.watchdog_expired,
        current_a=c.current_a.as_list(),
        power_w=c.power_w,
        meter_wh=c.meter_wh,
        transaction_wh=c.transaction_wh,
        vehicle_soc=None if c.vehicle is None else c.vehicle.soc,
        faults=sorted(f.value for f in c.faults),
    )


def render_full_state(state: dict[str, str]) -> str:
    """``key:value`` lines, ``\\n``-separated, with a trailing newline."""
    return "".join(f"{key}:{value}\n" for key, value in state.items())


def create_bender_rest_app(
    controller: BenderController,
    auth: RestAuth | str | None = None,
    *,
    gate: WireGate | None = None,
    admin: bool = True,
) -> FastAPI:
    """The legacy REST app of ``controller`` (and its ``/sim`` admin API when ``admin``).

    ``auth`` overrides ``controller.config.rest_auth``. ``gate`` applies the wire faults of
    connector 1 (``serve_bender`` passes one; without it faults other than ``garbage`` are
    ignored by this app).
    """
    cfg = controller.config
    auth_mode = RestAuth(auth if auth is not None else cfg.rest_auth)
    app = FastAPI(title="Virtual Bender CC612 legacy REST", version=cfg.firmware_version)
    first = controller.connector(1)

    def check_credentials(request: Request) -> None:
        if auth_mode is RestAuth.NONE:
            return
        if auth_mode is RestAuth.HEADERS:
            user = request.headers.get("username", "")
            password = request.headers.get("password", "")
        else:
            user, password = _basic_credentials(request.headers.get("authorization", ""))
        ok_user = user in ("operator", "manufacturer") and secrets.compare_digest(
            user.encode(), cfg.rest_username.encode()
        )
        ok_password = secrets.compare_digest(password.encode(), cfg.rest_password.encode())
        if not (ok_user and ok_password):
            raise HTTPException(status_code=401, detail="unauthorized")

    async def wire_text(request: Request, key: str | None) -> Response:
        check_credentials(request)
        if gate is not None and not await gate.pass_through():
            return PlainTextResponse("closing", status_code=503)
        if DeviceFault.GARBAGE in first.faults:
            return PlainTextResponse(GARBAGE_BODY)
        state = controller.full_state()
        if key is None:
            return PlainTextResponse(render_full_state(state))
        if key not in state:
            return PlainTextResponse(f"unknown key {key}\n", status_code=404)
        return PlainTextResponse(f"{key}:{state[key]}\n")

    @app.get(
        "/rest/full_state",
        response_class=PlainTextResponse,
        responses={401: {"description": "bad credentials"}},
    )
    async def full_state(request: Request) -> Response:
        """All keys as ``key:value`` text lines."""
        return await wire_text(request, None)

    @app.get(
        "/rest/{key}",
        response_class=PlainTextResponse,
        responses={401: {"description": "bad credentials"}, 404: {"description": "no such key"}},
    )
    async def one_key(key: str, request: Request) -> Response:
        """One key as ``key:value``."""
        return await wire_text(request, key)

    if admin:
        _add_admin_routes(app, controller)
    return app


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return "", ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    user, _, password = decoded.partition(":")
    return user, password


_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such connector"}}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such connector"},
    409: {"description": "bad state"},
}


def _connector(controller: BenderController, n: int) -> BenderConnector:
    try:
        return controller.connector(n)
    except KeyError as err:
        raise HTTPException(status_code=404, detail=f"no connector {n}") from err


def _add_admin_routes(app: FastAPI, controller: BenderController) -> None:
    _add_session_routes(app, controller)
    _add_fault_routes(app, controller)
    add_panel_routes(app, controller)


def _add_session_routes(app: FastAPI, controller: BenderController) -> None:
    @app.get("/sim/state")
    async def state() -> list[ConnectorOut]:
        """Every connector's state."""
        return [_connector_out(c) for c in controller.connectors]

    @app.post("/sim/connectors/{n}/plug", responses=_CONFLICT)
    async def plug(n: int, body: VehicleIn) -> ConnectorOut:
        """Plug a vehicle in."""
        c = _connector(controller, n)
        try:
            c.plug_in(SimVehicle(**body.model_dump()))
        except ValueError as err:
            raise HTTPException(status_code=409, detail=str(err)) from err
        return _connector_out(c)

    @app.post("/sim/connectors/{n}/unplug", responses=_NOT_FOUND)
    async def unplug(n: int) -> ConnectorOut:
        """Unplug the vehicle."""
        c = _connector(controller, n)
        c.unplug()
        return _connector_out(c)

    @app.post("/sim/connectors/{n}/authorize", responses=_NOT_FOUND)
    async def authorize(n: int, body: AuthorizeIn) -> ConnectorOut:
        """Authorise charging (RFID card / backend)."""
        c = _connector(controller, n)
        c.authorize(body.uid)
        return _connector_out(c)

    @app.post("/sim/connectors/{n}/stop", responses=_NOT_FOUND)
    async def stop(n: int) -> ConnectorOut:
        """Stop the transaction (vehicle stays plugged in)."""
        c = _connector(controller, n)
        c.stop_transaction()
        return _connector_out(c)

    @app.post("/sim/connectors/{n}/soc", responses=_CONFLICT)
    async def soc(n: int, body: SocIn) -> ConnectorOut:
        """Set the vehicle's state of charge."""
        c = _connector(controller, n)
        try:
            c.set_soc(body.soc)
        except ValueError as err:
            raise HTTPException(status_code=409, detail=str(err)) from err
        return _connector_out(c)

    @app.post("/sim/connectors/{n}/hems", responses=_NOT_FOUND)
    async def hems(n: int, body: HemsIn) -> ConnectorOut:
        """Set the HEMS limit as if register 1000 had been written."""
        c = _connector(controller, n)
        c.set_hems_limit(body.current_a)
        return _connector_out(c)


def _add_fault_routes(app: FastAPI, controller: BenderController) -> None:
    @app.post("/sim/connectors/{n}/fault", responses=_NOT_FOUND)
    async def fault(n: int, body: FaultIn) -> ConnectorOut:
        """Inject a fault on one connector."""
        c = _connector(controller, n)
        if body.slow_delay_s is not None:
            controller.config.slow_delay_s = body.slow_delay_s
        c.set_fault(body.kind)
        return _connector_out(c)

    @app.delete("/sim/connectors/{n}/fault", responses=_NOT_FOUND)
    async def clear(n: int, kind: Annotated[DeviceFault | None, Query()] = None) -> ConnectorOut:
        """Clear one fault (``?kind=``) or all of them on one connector."""
        c = _connector(controller, n)
        c.clear_fault(kind)
        return _connector_out(c)

    @app.post("/sim/fault")
    async def device_fault(body: FaultIn) -> list[ConnectorOut]:
        """Inject a fault on every connector."""
        if body.slow_delay_s is not None:
            controller.config.slow_delay_s = body.slow_delay_s
        controller.set_fault(body.kind)
        return [_connector_out(c) for c in controller.connectors]

    @app.delete("/sim/fault")
    async def device_clear(
        kind: Annotated[DeviceFault | None, Query()] = None,
    ) -> list[ConnectorOut]:
        """Clear faults on every connector."""
        controller.clear_fault(kind)
        return [_connector_out(c) for c in controller.connectors]


__all__ = ["GARBAGE_BODY", "create_bender_rest_app", "render_full_state"]
