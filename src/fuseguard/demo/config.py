"""The edge config the demo runs with (the same schema as ``examples/site.toml``)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fuseguard.config import FuseguardConfig
from fuseguard.demo.site import (
    BAYS,
    DEMO_EDGE_ID,
    DEMO_FUSE_A,
    DEMO_GARAGE,
    DEMO_GARAGE_FUSE_A,
    DEMO_OCPP_ID,
    DemoBay,
)
from fuseguard.sim.ocpp.station import OcppSimConfig


def demo_config(
    *,
    data_dir: Path,
    meter_port: int,
    charger_ports: list[tuple[int, int]],
    password: str,
    local_api_port: int,
    modbus_port: int,
    evse_api_port: int,
    host: str,
    web_port: int = 0,
    extra: dict[str, Any] | None = None,
    garage_meter_port: int | None = None,
    pv_port: int | None = None,
    ocpp: OcppSimConfig | None = None,
) -> FuseguardConfig:
    """The edge config the demo runs with (the same schema as ``examples/site.toml``).

    ``extra`` adds sections (``mqtt``) and API blocks (``api.metrics``). ``charger_ports`` has a
    (REST, Modbus) pair per bay (unused for the OCPP bay); ``ocpp`` is the virtual OCPP charge
    point: the central system listens on its URL's port, the OCPP bay has its identity and
    password (without it: any free port, and ``password``). ``garage_meter_port`` meters the
    garage with an SDM630, ``pv_port`` reads the PV inverter over SunSpec."""
    ocpp_port = urlsplit(ocpp.url).port or 0 if ocpp is not None else 0
    ocpp_password = ocpp.password if ocpp is not None else None
    chargers = [
        _charger_config(bay, rest, mb, ocpp_password or password)
        for bay, (rest, mb) in zip(BAYS, charger_ports, strict=True)
    ]
    api: dict[str, Any] = {
        "local": {
            "host": host,
            "port": local_api_port,
            "user": "demo",
            "password": password,
            "docs": True,
        },
        "modbus": {"host": host, "port": modbus_port},
        "ocpp": {"host": "127.0.0.1", "port": ocpp_port, "meter_interval_s": 5},
        # Plain HTTP while the demo stays on loopback (said in the banner); `run` is HTTPS.
        "evse": {"host": host, "port": evse_api_port, "tls": not _loopback(host), "docs": True},
        # plain HTTP only on loopback; on a network address the edge's certificate is used
        "web": {"enabled": True, "host": host, "port": web_port, "tls": not _loopback(host)},
    }
    data: dict[str, Any] = {
        "data_dir": str(data_dir),
        "site": {
            "edge_id": DEMO_EDGE_ID,
            "name": "fuseguard demo",
            "main_fuse_a": DEMO_FUSE_A,
            "circuits": [_garage_circuit(garage_meter_port)],
        },
        "meter": {"driver": "cemm", "host": "127.0.0.1", "port": meter_port, "alias": "p1"},
        "chargers": chargers,
        "control": {"min_run_s": 60, "min_pause_s": 30},
        "api": api,
    }
    if pv_port is not None:
        data["pv"] = {"driver": "sunspec", "host": "127.0.0.1", "port": pv_port}
    for key, section in (extra or {}).items():
        if key == "api":
            api.update(section)
        else:
            data[key] = section
    return FuseguardConfig.model_validate(data)


def _garage_circuit(meter_port: int | None) -> dict[str, Any]:
    circuit: dict[str, Any] = {"id": DEMO_GARAGE, "fuse_a": DEMO_GARAGE_FUSE_A}
    if meter_port is not None:
        circuit["meter"] = {
            "driver": "modbus",
            "model": "sdm630",
            "host": "127.0.0.1",
            "port": meter_port,
        }
    return circuit


def _charger_config(bay: DemoBay, rest: int, mb: int, ocpp_password: str) -> dict[str, Any]:
    common: dict[str, Any] = {
        "id": bay.id,
        "evse_uuid": bay.evse_uuid,
        "rotation": bay.rotation.value,
        "circuit": bay.circuit,
        "max_current_a": bay.max_current_a,
        "safe_current_a": 6,
        "plugs": [{"uuid": bay.plug_uuid, "label": "Plug 1"}],
    }
    if bay.driver == "ocpp":
        return common | {
            "driver": "ocpp",
            "ocpp_id": DEMO_OCPP_ID,
            "ocpp_password": ocpp_password,
            "limit_delay_s": 2.0,  # the virtual charge point's profile delay (demo/site.py)
        }
    return common | {
        "driver": "bender",
        "host": "127.0.0.1",
        "rest_port": rest,
        "modbus_port": mb,
        "safe_timeout_s": 30,
    }


def integrations_config(
    mqtt_url: str | None, mqtt_prefix: str, ha_prefix: str, metrics_port: int | None
) -> dict[str, Any]:
    """The ``[mqtt]`` section and ``[api.metrics]`` block of the demo (``--mqtt``, ...)."""
    extra: dict[str, Any] = {}
    if mqtt_url is not None:
        extra["mqtt"] = {
            "url": mqtt_url,
            "topic_prefix": mqtt_prefix,
            "discovery_prefix": ha_prefix,
            "client_id": f"fuseguard-demo-{secrets.token_hex(4)}",
        }
    if metrics_port is not None:
        extra["api"] = {"metrics": {"enabled": True, "host": "127.0.0.1", "port": metrics_port}}
    return extra


def _loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1")
