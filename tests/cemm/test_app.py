"""The virtual CEMM's wire API in-process (TestClient): paths, shapes, errors, admin API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cemm_rig import Rig
from fastapi.testclient import TestClient

from fuseguard.sim.cemm import create_cemm_app, load_fixture
from fuseguard.sim.cemm_app import CemmOfflineError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cemm" / "1.24"


@pytest.fixture
async def http(rig: Rig) -> Iterator[TestClient]:
    await rig.advance(120)
    with TestClient(create_cemm_app(rig.model)) as c:
        yield c


@pytest.mark.parametrize(
    "path",
    [
        "/open-api/v1/",
        "/open-api/v1/io",
        "/open-api/v1/p1/realtime/",
        "/open-api/v1/mb5/realtime/",
        "/open-api/v1/usage/realtime/",
        "/open-api/v1/p1/data/day/",
        "/open-api/v1/p1/data/month/",
        "/open-api/v1/p1/data/year/",
    ],
)
def test_every_path_with_and_without_trailing_slash(http: TestClient, path: str):
    with_slash = http.get(path if path.endswith("/") else path + "/")
    without = http.get(path.rstrip("/"))
    for r in (with_slash, without):
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
    assert with_slash.json() == without.json()


def test_root_and_io_follow_the_fixture_template(http: TestClient):
    assert http.get("/open-api/v1/").json() == load_fixture("1.24", "root.json")
    io = http.get("/open-api/v1/io").json()["data"]
    assert [e["alias"] for e in io] == ["p1", "mb5", "usage"]
    assert all(isinstance(e["io_id"], int) and isinstance(e["port"], int) for e in io)


@pytest.mark.parametrize(
    ("alias", "fixture"), [("p1", "realtime_p1.json"), ("mb5", "realtime_mb.json")]
)
def test_realtime_has_the_real_device_channel_set(http: TestClient, alias: str, fixture: str):
    body = http.get(f"/open-api/v1/{alias}/realtime/").json()
    real = json.loads((FIXTURES / fixture).read_text())
    assert set(body) == set(real) == {"data", "totals"}
    assert set(body["data"]) == set(real["data"])
    assert set(body["totals"]) == set(real["totals"])
    for block in body.values():
        for pair in block.values():
            assert isinstance(pair, list)
            assert len(pair) == 2


def test_day_history_echoes_time_and_io_id_as_string(http: TestClient):
    body = http.get("/open-api/v1/p1/data/day/", params={"time": "1587420000"}).json()
    assert body["io_id"] == "1"
    assert body["time"] == 1587420000
    series = body["data"]["electric_power"]
    assert len(series) == 1441  # a past day: every minute (0 = no data) plus the sentinel
    assert series[0] == [1587506399000, None]
    assert series[-1] == [1587420000000, 0]


@pytest.mark.parametrize("bad", ["abc", "-5", "1.5", "", "99999999999999"])
def test_bad_time_is_400_with_json(http: TestClient, bad: str):
    r = http.get("/open-api/v1/p1/data/day/", params={"time": bad})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert "time" in r.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/open-api/v1/mb9/realtime/",
        "/open-api/v1/nonsense/realtime",
        "/open-api/v1/p1/realtime/flow",
        "/open-api/v1/p1/data/week/",
        "/open-api/v1/mb9/data/day/",
        "/open-api/v1/p1/whatever",
    ],
)
def test_unknown_alias_channel_or_path_is_404_with_json(http: TestClient, path: str):
    r = http.get(path)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert "unknown" in r.json()["error"]


def test_single_channel_endpoint(http: TestClient):
    full = http.get("/open-api/v1/p1/realtime/").json()
    one = http.get("/open-api/v1/p1/realtime/electric_power").json()
    assert one == {"data": {"electric_power": full["data"]["electric_power"]}}


def test_admin_api_switches_faults(http: TestClient, rig: Rig):
    assert http.get("/sim/state").json()["fault"] is None
    r = http.put("/sim/fault", json={"kind": "http_500"})
    assert r.status_code == 200
    assert rig.model.fault.kind is not None
    bad = http.get("/open-api/v1/p1/realtime/")
    assert bad.status_code == 500
    assert bad.json()["error"]
    assert http.get("/sim/state").json()["fault"] == "http_500"  # admin API unaffected
    http.put("/sim/fault", json={"kind": "garbage", "variant": "html"})
    g = http.get("/open-api/v1/")
    assert g.status_code == 200
    assert g.headers["content-type"].startswith("text/html")
    assert http.put("/sim/fault", json={"kind": "melted"}).status_code == 422
    assert http.delete("/sim/fault").json() == {"fault": None}
    assert http.get("/open-api/v1/").status_code == 200


def test_offline_in_process_raises(http: TestClient, rig: Rig):
    rig.model.set_fault("offline")
    with pytest.raises(CemmOfflineError):
        http.get("/open-api/v1/")


def test_a_device_built_from_the_io_fixture_serves_it():
    from fuseguard.model.clock import VirtualClock
    from fuseguard.sim.cemm import CemmModel, aliases_from_fixture

    model = CemmModel(VirtualClock(), aliases_from_fixture())
    model.tick()
    with TestClient(create_cemm_app(model)) as c:
        assert c.get("/open-api/v1/io").json() == load_fixture("1.24", "io.json")
        real = load_fixture("1.24", "realtime_pulse.json")
        body = c.get("/open-api/v1/pulse-1/realtime").json()
        assert set(body["data"]) == set(real["data"])
        assert set(body["totals"]) == set(real["totals"])
        assert set(c.get("/open-api/v1/emucs-gas/realtime").json()["data"]) == {"gas"}
