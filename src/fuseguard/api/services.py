"""Edge services for the CLEMAP APIs: local API (:7000), Modbus twin (:5020), EVSE API (:3032).

Each ``start_*`` is an :data:`fuseguard.runtime.EdgeService`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import TypeVar

from fuseguard.api.live import ControllerLiveData, status_records
from fuseguard.runtime import EdgeRuntime, display_host, display_url
from fuseguard.serving import DEFAULT_LIMITS, PortInUseError, ServerLimits, serve_app

T = TypeVar("T")


async def _listening(service: str, host: str, port: int, key: str, start: Awaitable[T]) -> T:
    """``await start``; a failure to listen becomes a :class:`PortInUseError` naming ``key``."""
    try:
        return await start
    except PortInUseError:
        raise
    except OSError as err:
        raise PortInUseError(service, host, port, key, err.strerror or str(err)) from err


def per_peer_limits(max_connections_per_peer: int) -> ServerLimits:
    """The HTTP listeners' bounds with the configured ``max_connections_per_peer``."""
    return dataclasses.replace(DEFAULT_LIMITS, max_connections_per_peer=max_connections_per_peer)


EVSE_BACKEND = "evse_backend"
EVSE_INFOS = "evse_infos"


def tls_files(
    rt: EdgeRuntime, cert_file: object, key_file: object, names: Sequence[str] = ()
) -> tuple[str, str]:
    """Configured certificate files, or a self-signed pair for ``names`` (+ localhost) generated
    in the data dir (again when the names change)."""
    return edge_cert(rt.data_dir, cert_file, key_file, "", names)


def edge_cert(
    data_dir: Path, cert_file: object, key_file: object, host: str, names: Sequence[str] = ()
) -> tuple[str, str]:
    """Configured certificate files, or the edge's self-signed pair in ``data_dir`` for the
    bound ``host`` (unless a wildcard), ``names``, localhost and 127.0.0.1 (one SAN rule for
    every TLS server of the edge: local API, EVSE API, dashboard, OCPP)."""
    if cert_file and key_file:
        return str(cert_file), str(key_file)
    from fuseguard.api.tls import ensure_self_signed_cert

    bound = [] if host in ("", "0.0.0.0", "::") else [host]
    cert, key = ensure_self_signed_cert(data_dir, [*bound, *names, "localhost", "127.0.0.1"])
    return str(cert), str(key)


async def start_local_api(rt: EdgeRuntime) -> None:
    """``/v1/live/data``, ``/v1/flex_management/setting``, ``/v1/keep-alive`` (Basic auth)."""
    lc = rt.config.api.local
    if not lc.enabled:
        return
    from fuseguard.api.local import create_local_app

    certfile = keyfile = None
    if lc.tls:
        certfile, keyfile = edge_cert(rt.data_dir, lc.cert_file, lc.key_file, lc.host, lc.tls_names)
    live = ControllerLiveData(rt.controller, rt.config.site.voltage_v)
    app = create_local_app(
        rt.flex,
        live,
        user=lc.user,
        password=lc.password.get_secret_value(),
        docs=lc.docs,
        clock=rt.clock,
    )
    handle = await _listening(
        "local API", lc.host, lc.port, "api.local.port",
        serve_app(app, lc.host, lc.port, certfile, keyfile,
                  limits=per_peer_limits(lc.max_connections_per_peer)),
    )  # fmt: skip
    rt.stack.push_async_callback(handle.close)
    rt.urls["local_api"] = display_url(handle.url, lc.host)


async def start_modbus_twin(rt: EdgeRuntime) -> None:
    """The Modbus TCP twin of the local API."""
    mc = rt.config.api.modbus
    if not mc.enabled:
        return
    from fuseguard.api.modbus import serve_modbus_twin

    live = ControllerLiveData(rt.controller, rt.config.site.voltage_v)
    twin = await _listening(
        "Modbus twin", mc.host, mc.port, "api.modbus.port",
        serve_modbus_twin(
            rt.flex, live, mc.host, mc.port, allowed_hosts=mc.allowed_hosts,
            read_only=mc.read_only, max_connections_per_peer=mc.max_connections_per_peer,
        ),
    )  # fmt: skip
    rt.stack.push_async_callback(twin.close)
    rt.urls["modbus"] = f"{display_host(mc.host)}:{twin.port}"


async def start_evse_api(rt: EdgeRuntime) -> None:
    """Direct EVSE Control + status for this edge's own ``edge_device_id``.

    HTTPS by default (``[api.evse] tls``), like the seed's ``https://...:3032``: the configured
    ``cert_file``/``key_file``, else the same self-signed pair the local API uses.
    """
    ec = rt.config.api.evse
    if not ec.enabled:
        return
    from fuseguard.api.edge_evse import EdgeEvseBackend, evse_infos_from_config
    from fuseguard.api.evse import create_evse_app
    from fuseguard.store.tokens import TokenRepository

    controller = rt.controller
    evses = evse_infos_from_config(rt.config)
    backend = EdgeEvseBackend(
        rt.config.site.edge_id,
        evses,
        rt.targets,
        lambda uuid: status_records(controller.status(), uuid),
    )
    app = create_evse_app(
        backend, TokenRepository(rt.engine), max_duration_s=ec.max_duration_s, docs=ec.docs
    )
    certfile = keyfile = None
    if ec.tls:
        certfile, keyfile = tls_files(rt, ec.cert_file, ec.key_file)
    handle = await _listening(
        "EVSE API",
        ec.host,
        ec.port,
        "api.evse.port",
        serve_app(
            app,
            ec.host,
            ec.port,
            certfile,
            keyfile,
            limits=per_peer_limits(ec.max_connections_per_peer),
        ),
    )
    rt.stack.push_async_callback(handle.close)
    rt.urls["evse_api"] = display_url(handle.url, ec.host)
    rt.shared[EVSE_BACKEND] = backend
    rt.shared[EVSE_INFOS] = evses


__all__ = ["edge_cert", "start_evse_api", "start_local_api", "start_modbus_twin", "tls_files"]
