"""Drivers from the site config: the grid meter and one charger driver per plug.

One function per device role; a new driver family adds its branch here (and its name to
``MeterConfig.driver`` / ``ChargerConfig.driver``).
"""

from __future__ import annotations

import aiohttp

from fuseguard.config import FuseguardConfig
from fuseguard.config.controller import plug_ids
from fuseguard.control.ports import Charger, GridMeter
from fuseguard.model.clock import Clock


def build_meter(cfg: FuseguardConfig, session: aiohttp.ClientSession) -> GridMeter:
    """The grid-meter driver named by ``[meter] driver``."""
    m = cfg.meter
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
    msg = f"meter driver {m.driver!r} is only available inside the simulator"
    raise ValueError(msg)


def build_chargers(
    cfg: FuseguardConfig, session: aiohttp.ClientSession, clock: Clock
) -> dict[str, Charger]:
    """One driver per plug (a second Bender connector is on Modbus port + 1)."""
    from fuseguard.devices.bender import BenderCharger
    from fuseguard.devices.clemap import ClemapChildCharger, ClemapEdgeClient

    drivers: dict[str, Charger] = {}
    for ch in cfg.chargers:
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


__all__ = ["build_chargers", "build_meter"]
