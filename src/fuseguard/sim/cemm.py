"""Virtual CEMM energy monitor (cemm.nl Local Open API): model, wire app, server, discovery.

Public entry points (the implementation is split over ``cemm_history``, ``cemm_model``,
``cemm_app`` and ``cemm_server``):

* :class:`CemmModel` – pure state on an injected clock; ``CemmModel.for_site(site, pv=...)``
  meters a shared :class:`~fuseguard.sim.site.SiteModel` (one telegram per site tick).
* :func:`create_cemm_app` – the FastAPI app (wire API + ``/sim`` admin API).
* :func:`serve_cemm` – uvicorn + UDP discovery responder in the caller's event loop.
"""

from fuseguard.sim.cemm_app import create_cemm_app
from fuseguard.sim.cemm_history import Period
from fuseguard.sim.cemm_model import (
    AliasConfig,
    AliasKind,
    CemmIdentity,
    CemmModel,
    Fault,
    GarbageVariant,
    UnknownAliasError,
    alias_kind,
    aliases_from_fixture,
    load_fixture,
    nl_rate,
)
from fuseguard.sim.cemm_server import (
    DISCOVERY_PORT,
    CemmDiscoveryResponder,
    CemmServerHandle,
    serve_cemm,
)

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
