"""Schemathesis against the local API's own OpenAPI (every route documents 400/401/422)."""

from __future__ import annotations

import base64

import schemathesis
from hypothesis import settings
from localapi_support import PASSWORD, USER, StaticLiveData

from fuseguard.api.local import LiveData, create_local_app
from fuseguard.control.flex import FlexManagement, MemoryFlexStore
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.model.status import PlugStatus

AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}

_flex = FlexManagement(VirtualClock(), fuse_a=63.0, store=MemoryFlexStore())
_live = StaticLiveData(
    LiveData(4600.0, 0.0, Phases(6.0, 7.0, 7.0), Phases.uniform(230.0), PlugStatus.CONNECTED)
)
app = create_local_app(_flex, _live, user=USER, password=PASSWORD)
schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=AUTH)


def test_schema_documents_auth_and_errors_on_every_route() -> None:
    raw = app.openapi()
    ops = [op for item in raw["paths"].values() for op in item.values()]
    assert len(ops) == 11  # live data, 4 x (GET+POST) settings, 2 keep-alive spellings
    for op in ops:
        assert {"401", "422", "400"} <= set(op["responses"])


@schema.parametrize()
@settings(max_examples=20, deadline=None)
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=AUTH)
