"""Schemathesis against the edge's local API and EVSE API on the edge's real backends.

The apps are assembled like ``fuseguard run`` assembles them (flex settings in the JSON file
store, targets and tokens in SQLite, the running controller as the status source) and served on
loopback (see ``servekit``). Every case is validated against the app's own OpenAPI (status code,
content type, response schema, ...): a 5xx or a schema violation fails the case. The schemas
declare no OpenAPI links, so there is no stateful run here; the set -> get -> delete sequences
are covered by ``test_kill9_edge.py`` and the API tests.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis

from tests.faults.casekit import CASES_PER_API, Tally, case_settings, http_session, map_current
from tests.faults.servekit import (
    EDGE_ID,
    EVSES,
    PASSWORD,
    USER,
    EdgeApps,
    LoopThread,
    build_edge_apps,
    edge_config,
    schema_apps,
    serve,
)

AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
LOCAL_OPS = 11
EVSE_OPS = 4

HTTP = http_session()
local_tally = Tally("edge local API")
evse_tally = Tally("edge EVSE API")


class EdgeServers:
    def __init__(self, apps: EdgeApps, local_url: str, evse_url: str) -> None:
        self.apps = apps
        self.local_url = local_url
        self.evse_url = evse_url


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeServers]:
    loop_thread = LoopThread()
    cfg = edge_config(tmp_path_factory.mktemp("edge-apis"), charger_timeout_s=3)

    async def start() -> EdgeServers:
        apps = await build_edge_apps(cfg, loop_thread)
        return EdgeServers(
            apps, await serve(apps.local_app, loop_thread), await serve(apps.evse_app, loop_thread)
        )

    try:
        yield loop_thread.run(start())
    finally:
        loop_thread.close()


def _schema_of(app: Any) -> Any:
    return schemathesis.openapi.from_dict(app.openapi())


# The schemas come from apps built by the same factories on stand-in backends (pure
# construction, no I/O); test_schemas_are_the_served_ones checks they equal the served apps'.
_SHAPE = schema_apps()
local = _schema_of(_SHAPE.local_app)
evse = _schema_of(_SHAPE.evse_app)


@evse.hook
def map_path_parameters(context: Any, path_parameters: dict[str, Any]) -> dict[str, Any]:
    """Most cases address this edge and one of its EVSEs (so they get past 404)."""
    raw = str(path_parameters.get("uuid", ""))
    digest = hashlib.md5(raw.encode()).digest()
    if digest[0] % 8:  # 7 in 8 cases
        path_parameters["uuid"] = EVSES[digest[1] % len(EVSES)][0]
        path_parameters["edge_device_id"] = EDGE_ID
    return path_parameters


@evse.hook
def map_body(context: Any, body: Any) -> Any:
    """Keep schema-valid currents within these EVSEs' range [6, 16] A (see map_current)."""
    return map_current(body, 16)


def test_schemas_are_the_served_ones(edge: EdgeServers) -> None:
    assert edge.apps.local_app.openapi() == _SHAPE.local_app.openapi()
    assert edge.apps.evse_app.openapi() == _SHAPE.evse_app.openapi()


@local.parametrize()
@case_settings(LOCAL_OPS)
def test_local_api_conforms(case: Any, edge: EdgeServers) -> None:
    response = case.call_and_validate(base_url=edge.local_url, session=HTTP, headers=AUTH)
    local_tally.add(case.operation.label, response.status_code)


def test_local_api_ran_its_budget() -> None:
    local_tally.check()


@evse.parametrize()
@case_settings(EVSE_OPS)
def test_evse_api_conforms(case: Any, edge: EdgeServers) -> None:
    uuid = str((case.path_parameters or {}).get("uuid", ""))
    token = edge.apps.tokens.get(uuid, "not-a-token")
    response = case.call_and_validate(
        base_url=edge.evse_url, session=HTTP, headers={"evsetoken": token}
    )
    evse_tally.add(case.operation.label, response.status_code)


def test_evse_api_ran_its_budget() -> None:
    evse_tally.check()


def test_budget_is_the_configured_one() -> None:
    assert CASES_PER_API >= 1
