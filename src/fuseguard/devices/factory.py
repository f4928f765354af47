"""Drivers from the site config: the grid meter and one charger driver per plug.

One function per device role; a new driver family adds its branch here (and its name to
``MeterEndpointConfig.driver`` / ``ChargerConfig.driver``). ``build_meter_endpoint`` builds any
meter config (the grid meter, a circuit's ``meter``, ``[pv]``).
"""

from __future__ import annotations

import aiohttp

from fuseguard.config import FuseguardConfig, MeterEndpointConfig
from fuseguard.config.controller import plug_ids
from fuseguard.control.ports import Charger, GridMeter
from fuseguard.model.clock import Clock


def build_meter(
    cfg: FuseguardConfig, session: aiohttp.ClientSession, clock: Clock | None = None
) -> GridMeter:
    """The grid-meter driver named by ``[meter] driver``."""
    return build_meter_endpoint(cfg.meter, session, clock=clock, name="grid meter")


def build_circuit_meters(
    cfg: FuseguardConfig, session: aiohttp.ClientSession, clock: Clock | None = None
) -> dict[str, GridMeter]:
    """One driver per ``[[site.circuits]]`` with a ``meter``, by circuit id."""
    return {
        c.id: build_meter_endpoint(c.meter, session, clock=clock, name=f"{c.id} meter")
        for c in cfg.site.circuits
        if c.meter is not None
    }


def build_pv_meter(
    cfg: FuseguardConfig, session: aiohttp.ClientSession, clock: Clock | None = None
) -> GridMeter | None:
    """The ``[pv]`` meter's driver, if there is one."""
    if cfg.pv is None:
        return None
    return build_meter_endpoint(cfg.pv, session, clock=clock, name="pv meter")


def build_meter_endpoint(
    m: MeterEndpointConfig,
    session: aiohttp.ClientSession,
    *,
    clock: Clock | None = None,
    name: str | None = None,
) -> GridMeter:
    """The driver for one meter config: ``[meter]``, a circuit's ``meter`` or ``[pv]``."""
    if m.driver == "cemm":
        from fuseguard.devices.cemm import CemmClient, CemmGridMeter

        client = CemmClient(host=m.host, port=m.port, session=session)
        return CemmGridMeter(client, alias=m.alias)
    if m.driver == "clemap":
        from fuseguard.devices.clemap import ClemapEdgeClient, ClemapGridMeter

        clemap = ClemapEdgeClient(
            host=m.host,
            port=m.port,
            user=m.user,
            password=m.password.get_secret_value(),
            session=session,
        )
        return ClemapGridMeter(clemap)
    if m.driver in ("modbus", "sunspec"):
        return _modbus_meter(m, clock=clock, name=name)
    msg = f"meter driver {m.driver!r} is only available inside the simulator"
    raise ValueError(msg)


def _modbus_meter(m: MeterEndpointConfig, *, clock: Clock | None, name: str | None) -> GridMeter:
    from fuseguard.devices.meters import (
        ModbusMeter,
        ModbusTransport,
        SunSpecClient,
        SunSpecInverter,
        SunSpecMeter,
    )
    from fuseguard.wire.meters import builtin_map, load_map_file

    label = f"{name or m.driver}@{m.host}:{m.port}/{m.unit_id}"
    transport = ModbusTransport(
        m.host, m.port, m.unit_id, request_timeout_s=m.request_timeout_s, name=label
    )
    if m.driver == "sunspec":
        reader = SunSpecInverter if m.sunspec_device == "inverter" else SunSpecMeter
        return reader(SunSpecClient(transport), clock=clock, name=label)
    path = m.map_file
    meter_map = load_map_file(path) if path is not None else builtin_map(str(m.model))
    return ModbusMeter(transport, meter_map, clock=clock, name=label)


def build_chargers(
    cfg: FuseguardConfig,
    session: aiohttp.ClientSession,
    clock: Clock,
    *,
    ocpp_cert: tuple[str, str] | None = None,
) -> dict[str, Charger]:
    """One driver per plug (a second Bender connector is on Modbus port + 1); ``ocpp_cert``:
    see :func:`build_ocpp_chargers`."""
    from fuseguard.devices.bender import BenderCharger
    from fuseguard.devices.clemap import ClemapChildCharger, ClemapEdgeClient

    drivers: dict[str, Charger] = build_ocpp_chargers(cfg, clock, ocpp_cert=ocpp_cert)
    for ch in cfg.chargers:
        if ch.driver == "ocpp":
            continue
        if ch.driver == "clemap":
            client = ClemapEdgeClient(
                host=ch.host,
                user=ch.user,
                password=ch.password.get_secret_value(),
                session=session,
                clock=clock,
                port=ch.rest_port,
            )
            drivers[ch.id] = ClemapChildCharger(
                client,
                clock,
                timeout_s=float(ch.safe_timeout_s or 120),  # the child's keep-alive timeout
                fallback_current_limit_a=float(ch.safe_current_a) if ch.safe_current_a else None,
            )
            continue
        for i, pid in enumerate(plug_ids(ch)):
            drivers[pid] = BenderCharger(
                host=ch.host,
                rest_port=ch.rest_port,
                modbus_port=ch.modbus_port + i,
                unit_id=ch.unit_id,
                session=session,
                use_rest=i == 0,
                safe_current_a=ch.safe_current_a,
                safe_timeout_s=ch.safe_timeout_s,
            )
    return drivers


def build_ocpp_chargers(
    cfg: FuseguardConfig, clock: Clock, *, ocpp_cert: tuple[str, str] | None = None
) -> dict[str, Charger]:
    """One :class:`OcppConnector` per plug of every ``driver = "ocpp"`` charger, all on one
    central system (``[api.ocpp]``), which the first connector's ``start()`` starts.

    With ``tls``: ``ocpp_cert`` (certificate and key files: the edge passes the configured pair
    or its generated one, ``api.services.edge_cert``), else ``cert_file``/``key_file``."""
    chargers = [ch for ch in cfg.chargers if ch.driver == "ocpp"]
    if not chargers:
        return {}
    from fuseguard.devices.ocpp import OcppCentralSystem, OcppConnector, Station, StationConfig
    from fuseguard.devices.ocpp.server import server_ssl_context
    from fuseguard.devices.ocpp.triggers import TriggerBudget

    oc = cfg.api.ocpp
    stations: dict[str, Station] = {}
    triggers = TriggerBudget(clock)  # one trigger budget for the whole central system
    for ch in chargers:
        identity = str(ch.ocpp_id)
        password = ch.ocpp_password.get_secret_value() if ch.ocpp_password else ""
        # an OCPP charge point without a configured safe current falls back to 6 A, not 0 A
        # (the value control reserves for it while it is unreachable: ChargerSpec.fallback_a)
        safe_a = ch.fallback_current_a()
        stations[identity] = Station(
            StationConfig(
                identity=identity,
                password=password or None,
                connectors=len(ch.plugs),
                safe_current_a=safe_a,
                phases=ch.phases,
                voltage_v=cfg.site.voltage_v,
                lease_s=oc.lease_s,
                meter_interval_s=oc.meter_interval_s,
                heartbeat_s=oc.heartbeat_s,
                allowed_id_tags=(
                    frozenset(oc.allowed_id_tags) if oc.local_auth == "allow_list" else None
                ),
                local_controller=oc.upstream is not None,
            ),
            clock,
            triggers,
        )
    tls = None
    if oc.tls:
        cert, key = ocpp_cert or (oc.cert_file, oc.key_file)
        if cert is None or key is None:
            msg = "[api.ocpp] tls: no certificate (give cert_file/key_file, or run in an edge)"
            raise ValueError(msg)
        tls = server_ssl_context(cert, key)
    server = OcppCentralSystem(
        stations,
        host=oc.host,
        port=oc.port,
        ssl_context=tls,
        allow_no_auth=oc.allow_no_auth,
        max_frame_bytes=oc.max_frame_bytes,
        max_pending_connections=oc.max_pending_connections,
        max_pending_connections_per_peer=oc.max_pending_connections_per_peer,
        open_timeout_s=oc.open_timeout_s,
        upstream=oc.upstream,
        spool_dir=cfg.data_dir / "ocpp-spool",
    )
    drivers: dict[str, Charger] = {}
    for ch in chargers:
        station = stations[str(ch.ocpp_id)]
        for i, pid in enumerate(plug_ids(ch)):
            drivers[pid] = OcppConnector(server, station, i + 1)
    return drivers


__all__ = [
    "build_chargers",
    "build_circuit_meters",
    "build_meter",
    "build_meter_endpoint",
    "build_ocpp_chargers",
    "build_pv_meter",
]
