"""The local REST API in-process (ASGI): auth, keys, partial updates, errors, watchdog."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest
from localapi_support import FUSE_A, PASSWORD, USER, StaticLiveData

from fuseguard.api.local import (
    KEEP_ALIVE_PATHS,
    SETTINGS_PATHS,
    LiveData,
    aggregate_status,
    check_password_strength,
    create_local_app,
)
from fuseguard.control.flex import FlexManagement
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.model.status import PlugStatus


@pytest.fixture
async def client(flex: FlexManagement, live: StaticLiveData) -> AsyncIterator[httpx2.AsyncClient]:
    app = create_local_app(flex, live, user=USER, password=PASSWORD)
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(
        transport=transport, base_url="https://edge", auth=(USER, PASSWORD)
    ) as c:
        yield c


async def test_live_data_keys_and_values(client: httpx2.AsyncClient) -> None:
    r = await client.get("/v1/live/data")
    assert r.status_code == 200
    assert r.json() == {
        "ActualActivePower": 9200.0,
        "ActualReactivePower": -150.0,
        "ActualCurrentL1": 10.0,
        "ActualCurrentL2": 12.5,
        "ActualCurrentL3": 17.5,
        "ActualCurrentSum": 40.0,
        "Status": "charging",
    }


async def test_settings_defaults(client: httpx2.AsyncClient) -> None:
    r = await client.get("/v1/flex_management/setting")
    assert r.status_code == 200
    assert r.json() == {
        "ActivePowerActivation": False,
        "CurrentLimit": FUSE_A,
        "FallbackCurrentLimit": 10.0,
        "RunState": True,
        "ReadinessState": True,
        "MaxActivePower": 0.0,
        "MinActivePower": 0.0,
    }


@pytest.mark.parametrize("path", SETTINGS_PATHS)
async def test_partial_update_on_every_path_spelling(
    client: httpx2.AsyncClient, flex: FlexManagement, path: str
) -> None:
    r = await client.post(path, json={"CurrentLimit": 25})
    assert r.status_code == 200
    assert r.json()["CurrentLimit"] == 25.0
    assert flex.limit_a() == FUSE_A  # activation still off
    r = await client.post(path, json={"ActivePowerActivation": True})
    assert r.status_code == 200
    assert flex.limit_a() == 25.0
    got = (await client.get(path)).json()
    assert got["ActivePowerActivation"] is True
    assert got["CurrentLimit"] == 25.0
    assert got["FallbackCurrentLimit"] == 10.0  # untouched by the partial updates


async def test_limit_change_through_the_api(
    client: httpx2.AsyncClient, flex: FlexManagement
) -> None:
    body = {"ActivePowerActivation": True, "CurrentLimit": 32.0, "FallbackCurrentLimit": 6.0}
    assert (await client.post("/v1/flex_management/setting", json=body)).status_code == 200
    assert flex.limit_a() == 32.0
    assert (await client.post("/v1/flex_management/setting", json={"CurrentLimit": 16})).is_success
    assert flex.limit_a() == 16.0


@pytest.mark.parametrize("path", KEEP_ALIVE_PATHS)
async def test_keep_alive_expiry_in_virtual_time(
    client: httpx2.AsyncClient, flex: FlexManagement, clock: VirtualClock, path: str
) -> None:
    await client.post(
        "/v1/flex_management/setting",
        json={"ActivePowerActivation": True, "CurrentLimit": 30, "FallbackCurrentLimit": 8},
    )
    for _ in range(5):  # 5 x 100 s, kept alive every time
        await clock.advance(100.0)
        r = await client.post(path)
        assert r.status_code == 200
        assert r.content == b""
    assert flex.limit_a() == 30.0
    await clock.advance(121.0)
    assert flex.limit_a() == 8.0
    got = (await client.get("/v1/flex_management/setting")).json()
    assert got["CurrentLimit"] == 8.0  # the fallback is reported
    await client.post("/v1/flex_management/setting", json={"CurrentLimit": 28})
    assert flex.limit_a() == 28.0
    assert not flex.in_fallback


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"CurrentLimit": "20"}, "CurrentLimit"),
        ({"CurrentLimit": True}, "CurrentLimit"),
        ({"CurrentLimit": -3}, "CurrentLimit"),
        ({"CurrentLimit": 1e7}, "CurrentLimit"),
        ({"CurrentLimit": None}, "CurrentLimit"),
        ({"FallbackCurrentLimit": [6]}, "FallbackCurrentLimit"),
        ({"ActivePowerActivation": "true"}, "ActivePowerActivation"),
        ({"ActivePowerActivation": 1}, "ActivePowerActivation"),
        ({"currentlimit": 20}, "currentlimit"),
    ],
)
async def test_invalid_fields_are_422_naming_the_field(
    client: httpx2.AsyncClient, flex: FlexManagement, body: dict[str, object], field: str
) -> None:
    before = flex.settings()
    r = await client.post("/v1/flex_management/setting", json=body)
    assert r.status_code == 422
    err = r.json()
    assert err["error"] == "invalid_field"
    assert field in [f["field"] for f in err["fields"]]
    assert flex.settings() == before


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2"])
async def test_bad_json_is_400_or_422(client: httpx2.AsyncClient, raw: bytes) -> None:
    r = await client.post(
        "/v1/flex_management/setting", content=raw, headers={"Content-Type": "application/json"}
    )
    assert r.status_code in (400, 422)
    assert r.json()["fields"][0]["field"] == "body"


async def test_non_object_body_is_422(client: httpx2.AsyncClient) -> None:
    r = await client.post("/v1/flex_management/setting", json=[1, 2])
    assert r.status_code == 422
    assert r.json()["fields"][0]["field"] == "body"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/live/data"),
        ("GET", SETTINGS_PATHS[0]),
        ("POST", SETTINGS_PATHS[2]),
        ("POST", KEEP_ALIVE_PATHS[0]),
        ("GET", "/openapi.json"),
    ],
)
@pytest.mark.parametrize("auth", [None, (USER, "wrong"), ("other", PASSWORD)])
async def test_bad_credentials_are_401(
    flex: FlexManagement,
    live: StaticLiveData,
    method: str,
    path: str,
    auth: tuple[str, str] | None,
) -> None:
    app = create_local_app(flex, live, user=USER, password=PASSWORD)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="https://edge", auth=auth
    ) as c:
        r = await c.request(method, path, json={"CurrentLimit": 1})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Basic")
    assert r.json()["error"] == "unauthorized"
    assert flex.settings().current_limit_a == FUSE_A  # nothing written


async def test_malformed_authorization_header_is_401(
    flex: FlexManagement, live: StaticLiveData
) -> None:
    app = create_local_app(flex, live, user=USER, password=PASSWORD)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="https://edge"
    ) as c:
        r = await c.get("/v1/live/data", headers={"Authorization": "Basic %%%"})
    assert r.status_code == 401


async def test_status_reflects_live_source(
    client: httpx2.AsyncClient, live: StaticLiveData
) -> None:
    live.data = LiveData(0.0, 0.0, Phases(), Phases.uniform(230.0), PlugStatus.IDLE)
    assert (await client.get("/v1/live/data")).json()["Status"] == "idle"


def test_aggregate_status_rule() -> None:
    S = PlugStatus
    assert aggregate_status([]) is S.IDLE
    assert aggregate_status([S.IDLE, S.IDLE]) is S.IDLE
    assert aggregate_status([S.IDLE, S.CONNECTED]) is S.CONNECTED
    assert aggregate_status([S.CONNECTED, S.CHARGING, S.OFFLINE]) is S.CHARGING
    assert aggregate_status([S.CHARGING, S.ERROR]) is S.ERROR
    assert aggregate_status([S.RECENTLY_STARTED_CHARGING, S.CHARGING]) is S.CHARGING
    assert aggregate_status([S.IDLE, S.OFFLINE]) is S.OFFLINE


@pytest.mark.parametrize("pw", ["", "   ", "password", "changeme", "CHANGEME", "admin", "short"])
def test_weak_passwords_are_refused(pw: str) -> None:
    with pytest.raises(ValueError, match="password"):
        check_password_strength(pw)


def test_good_password_passes() -> None:
    check_password_strength("correct-horse-battery")


def test_empty_password_refused_by_app(flex: FlexManagement, live: StaticLiveData) -> None:
    with pytest.raises(ValueError, match="password"):
        create_local_app(flex, live, user=USER, password="")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", SETTINGS_PATHS[0], "GET, POST"),
        ("PUT", SETTINGS_PATHS[3], "GET, POST"),
        ("GET", KEEP_ALIVE_PATHS[1], "POST"),
        ("POST", "/v1/live/data", "GET"),
    ],
)
async def test_wrong_method_is_405_listing_every_method_of_the_path(
    client: httpx2.AsyncClient, method: str, path: str, allow: str
) -> None:
    r = await client.request(method, path)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    assert r.json() == {
        "error": "method_not_allowed",
        "message": "Method Not Allowed",
        "fields": [],
    }


async def test_unknown_path_is_404(client: httpx2.AsyncClient) -> None:
    r = await client.get("/v1/nothing")
    assert r.status_code == 404
    assert r.json() == {"error": "not_found", "message": "Not Found", "fields": []}


async def test_openapi_is_served_behind_auth(client: httpx2.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    assert r.json()["info"]["title"] == "fuseguard edge local API (CLEMAP compatible)"
    assert "/v1/live/data" in r.json()["paths"]
