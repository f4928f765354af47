"""Virtual CEMM energy monitor (cemm.nl Local Open API): model, wire app, server, discovery.

Public entry points (the implementation is split over ``cemm_history``, ``cemm_faults``,
``cemm_model``, ``cemm_app`` and ``cemm_server``; the wire format is :mod:`fuseguard.wire.cemm`,
shared with the driver):

* :class:`CemmModel` – pure state on an injected clock; ``CemmModel.for_site(site, pv=...)``
  meters a shared :class:`~fuseguard.sim.site.SiteModel` (one telegram per site tick).
* :func:`create_cemm_app` – the FastAPI app (wire API + ``/sim`` admin API).
* :func:`serve_cemm` – uvicorn + UDP discovery responder in the caller's event loop.
"""

from fuseguard.sim.cemm_app import create_cemm_app
from fuseguard.sim.cemm_faults import Fault, GarbageVariant
from fuseguard.sim.cemm_model import (
    AliasConfig,
    CemmIdentity,
    CemmModel,
    UnknownAliasError,
    aliases_from_fixture,
    load_fixture,
    nl_rate,
)
from fuseguard.sim.cemm_server import CemmDiscoveryResponder, CemmServerHandle, serve_cemm
from fuseguard.wire.cemm import DISCOVERY_PORT, AliasKind, Period, alias_kind

__all__ = [
    "DISCOVERY_PORT",
    "AliasConfig",
    "AliasKind",
    "CemmDiscoveryResponder",
    "CemmIdentity",
    "CemmModel",
    "CemmServerHandle",
    "Fault",
    "GarbageVariant",
    "Period",
    "UnknownAliasError",
    "alias_kind",
    "aliases_from_fixture",
    "create_cemm_app",
    "load_fixture",
    "nl_rate",
    "serve_cemm",
]
