from datetime import timedelta
from typing import Any

import pytest
from evse_edge_helpers import (
    EDGE,
    EVSE_A,
    EVSE_B,
    PLUG_A1,
    PLUG_A2,
    PLUG_B1,
    Edge,
    start_edge,
    stop_edge,
)

from fuseguard.model.phases import Phases
from fuseguard.model.samples import ChargerSample
from fuseguard.model.status import CpState, OcppState

ERROR_KEYS = {"name", "message", "code", "className", "field"}


def auth(token: str) -> dict[str, str]:
    return {"evsetoken": token}


async def test_post_get_delete_round_trip(edge: Edge) -> None:
    c, h = edge.client, auth(edge.token_a)
    empty = await c.get(edge.path(), headers=h)
    assert empty.status_code == 200
    assert empty.json() == {"current": None, "valid_until": None}

    posted = await c.post(edge.path(), headers=h, json={"current": 10, "duration": 3600})
    assert posted.status_code == 201
    assert posted.json() == {"state": "received", "current": 10, "duration": 3600}
    valid_until = (edge.clock.now() + timedelta(hours=1)).isoformat(timespec="microseconds")
    assert valid_until == "2026-01-05T01:00:00.000000+00:00"

    got = await c.get(edge.path(), headers=h)
    assert got.json() == {"current": 10, "valid_until": valid_until}
    assert edge.targets.cap_a(EVSE_A) == 10
    assert edge.targets.cap_a(EVSE_B) is None

    deleted = await c.delete(edge.path(), headers=h)
    assert deleted.status_code == 200
    assert deleted.json() == {"current": 10, "valid_until": valid_until}
    assert (await c.get(edge.path(), headers=h)).json() == {"current": None, "valid_until": None}
    again = await c.delete(edge.path(), headers=h)
    assert again.json() == {"current": None, "valid_until": None}
    assert edge.targets.cap_a(EVSE_A) is None


async def test_zero_pauses_and_valid_until_keeps_microseconds(edge: Edge) -> None:
    await edge.clock.advance(0.244362)
    posted = await edge.client.post(
        edge.path(), headers=auth(edge.token_a), json={"current": 0, "duration": 1}
    )
    assert posted.json()["state"] == "received"
    got = (await edge.client.get(edge.path(), headers=auth(edge.token_a))).json()
    assert got == {"current": 0, "valid_until": "2026-01-05T00:00:01.244362+00:00"}
    assert edge.targets.cap_a(EVSE_A) == 0


async def test_target_expires_by_itself_in_virtual_time(edge: Edge) -> None:
    h = auth(edge.token_a)
    await edge.client.post(edge.path(), headers=h, json={"current": 8, "duration": 90})
    status = (await edge.client.get(edge.path(what="status"), headers=h)).json()
    assert {s["dyn_current_limit"] for s in status} == {8}
    await edge.clock.advance(89.9)
    assert (await edge.client.get(edge.path(), headers=h)).json()["current"] == 8
    await edge.clock.advance(0.1)
    assert (await edge.client.get(edge.path(), headers=h)).json() == {
        "current": None,
        "valid_until": None,
    }
    status = (await edge.client.get(edge.path(what="status"), headers=h)).json()
    assert {s["dyn_current_limit"] for s in status} == {32}  # back to the EVSE max
    assert (await edge.client.delete(edge.path(), headers=h)).json()["current"] is None


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"duration": 60}, 422, "current"),
        ({"current": 10}, 422, "duration"),
        ({"current": "10", "duration": 60}, 422, "current"),
        ({"current": 10.5, "duration": 60}, 422, "current"),
        ({"current": True, "duration": 60}, 422, "current"),
        ({"current": None, "duration": 60}, 422, "current"),
        ({"current": -1, "duration": 60}, 422, "current"),
        ({"current": 5, "duration": 60}, 422, "current"),  # below the EVSE's 6 A
        ({"current": 33, "duration": 60}, 422, "current"),  # above the EVSE's 32 A
        ({"current": 10, "duration": 0}, 422, "duration"),
        ({"current": 10, "duration": 86_401}, 422, "duration"),
        ({"current": 10, "duration": 60.5}, 422, "duration"),
        ({"current": 10, "duration": "60"}, 422, "duration"),
        ([10, 60], 422, "body"),
    ],
)
async def test_validation_names_the_field(edge: Edge, body: Any, code: int, field: str) -> None:
    r = await edge.client.post(edge.path(), headers=auth(edge.token_a), json=body)
    assert r.status_code == code, r.text
    err = r.json()
    assert set(err) == ERROR_KEYS
    assert err["field"] == field
    assert err["code"] == code
    assert err["name"] == "Unprocessable"
    assert err["className"] == "unprocessable"
    assert edge.targets.cap_a(EVSE_A) is None


async def test_integral_floats_are_integers(edge: Edge) -> None:
    """JSON Schema ``integer`` includes 10.0; the answer echoes plain integers."""
    r = await edge.client.post(
        edge.path(), headers=auth(edge.token_a), json={"current": 10.0, "duration": 60.0}
    )
    assert r.status_code == 201
    assert r.text == '{"state":"received","current":10,"duration":60}'


async def test_per_evse_range_and_malformed_json(edge: Edge) -> None:
    h = auth(edge.token_b)
    too_much = await edge.client.post(
        edge.path(EVSE_B), headers=h, json={"current": 20, "duration": 60}
    )
    assert too_much.status_code == 422
    assert "[6, 16]" in too_much.json()["message"]
    ok = await edge.client.post(edge.path(EVSE_B), headers=h, json={"current": 16, "duration": 60})
    assert ok.status_code == 201
    garbage = await edge.client.post(
        edge.path(EVSE_B),
        headers={**h, "content-type": "application/json"},
        content=b'{"current": 1',
    )
    assert garbage.status_code == 400
    assert garbage.json()["name"] == "BadRequest"
    assert garbage.json()["field"] == "body"


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "STATUS"])
async def test_token_misuse(edge: Edge, method: str) -> None:
    async def call(evse: str, headers: dict[str, str], edge_id: str = EDGE) -> Any:
        what = "status" if method == "STATUS" else "currentsettings"
        verb = "GET" if method == "STATUS" else method
        body = {"current": 10, "duration": 60} if verb == "POST" else None
        return await edge.client.request(
            verb, edge.path(evse, what, edge_id), headers=headers, json=body
        )

    missing = await call(EVSE_A, {})
    assert missing.status_code == 401
    assert missing.json()["name"] == "NotAuthenticated"
    assert missing.headers["www-authenticate"] == "evsetoken"
    wrong = await call(EVSE_A, auth("not-a-token"))
    assert wrong.status_code == 401
    other = await call(EVSE_A, auth(edge.token_b))  # B's valid token on A
    assert other.status_code == 403
    assert other.json()["className"] == "forbidden"
    # the token is checked before the EVSE is looked up: an unknown EVSE or edge looks like any
    # EVSE the token does not belong to (issue 17: no enumeration of EVSE ids)
    unknown_evse = await call("f" * 32, auth(edge.token_a))
    assert unknown_evse.status_code == 403
    unknown_edge = await call(EVSE_A, auth(edge.token_a), edge_id="edge-2")
    assert unknown_edge.status_code == 403
    no_token = await call("f" * 32, {})
    assert no_token.status_code == 401
    assert edge.targets.cap_a(EVSE_A) is None  # nothing got through

    (info_a, _) = sorted(await edge.tokens.list(), key=lambda i: i.evse_uuid != EVSE_A)
    assert await edge.tokens.revoke(info_a.id)
    revoked = await call(EVSE_A, auth(edge.token_a))
    assert revoked.status_code == 401


async def test_unknown_route_is_a_feathers_404(edge: Edge) -> None:
    r = await edge.client.get("/nothing/here")
    assert r.status_code == 404
    assert r.json()["className"] == "not-found"


def charging(current_a: float, duration_s: float | None = None) -> ChargerSample:
    return ChargerSample(
        cp_state=CpState.C,
        ocpp_state=OcppState.CHARGING,
        current_a=Phases.uniform(current_a),
        power_w=3 * 230 * current_a,
        charging_duration_s=duration_s,
        signalled_current_a=16,
    )


async def test_status_maps_charger_states(edge: Edge) -> None:
    ctl, h = edge.controller, auth(edge.token_a)
    await edge.clock.advance(0.851)
    ctl.samples[PLUG_A1] = charging(10.3)
    ctl.samples[PLUG_A2] = ChargerSample(cp_state=CpState.A, ocpp_state=OcppState.AVAILABLE)
    await edge.client.post(edge.path(), headers=h, json={"current": 12, "duration": 600})

    r = await edge.client.get(edge.path(what="status"), headers=h)
    assert r.status_code == 200
    first, second = r.json()
    assert first == {
        "time": "2026-01-05T00:00:00.851Z",
        "plug_uuid": PLUG_A1,
        "plug_label": "Plug 1",
        "evse_uuid": EVSE_A,
        "status": "recently_started_charging",
        "current_l1": 10.3,
        "current_l2": 10.3,
        "current_l3": 10.3,
        "power": 7107.0,
        "dyn_current_limit": 12.0,
    }
    assert second["status"] == "idle"
    assert second["plug_label"] == "Plug 2"
    assert (second["current_l1"], second["power"]) == (0.0, 0.0)

    await edge.clock.advance(60)  # the recently-started window is over
    first, _ = (await edge.client.get(edge.path(what="status"), headers=h)).json()
    assert first["status"] == "charging"

    ctl.samples[PLUG_A1] = ChargerSample(cp_state=CpState.B, ocpp_state=OcppState.SUSPENDEDEVSE)
    first, _ = (await edge.client.get(edge.path(what="status"), headers=h)).json()
    assert first["status"] == "connected"
    ctl.samples[PLUG_A1] = charging(6.0)  # charging again: a new session starts the window anew
    first, _ = (await edge.client.get(edge.path(what="status"), headers=h)).json()
    assert first["status"] == "recently_started_charging"
    assert first["power"] == 4140.0


@pytest.mark.parametrize(
    ("sample", "online", "expected"),
    [
        (None, True, "init"),
        (ChargerSample(cp_state=CpState.A), False, "offline"),
        (ChargerSample(cp_state=CpState.F), True, "error"),
        (ChargerSample(cp_state=CpState.B, errors=("rcmb",)), True, "error"),
        (ChargerSample(cp_state=CpState.C, ocpp_state=OcppState.FAULTED), True, "error"),
        (ChargerSample(cp_state=CpState.B, ocpp_state=OcppState.UNAVAILABLE), True, "stopped"),
        (ChargerSample(cp_state=CpState.B, ocpp_state=OcppState.FINISHING), True, "stopped"),
        (
            ChargerSample(
                cp_state=CpState.B, ocpp_state=OcppState.PREPARING, signalled_current_a=16
            ),
            True,
            "starting",
        ),
        (ChargerSample(cp_state=CpState.B, ocpp_state=OcppState.PREPARING), True, "connected"),
        (ChargerSample(cp_state=CpState.B, ocpp_state=OcppState.SUSPENDEDEV), True, "connected"),
        (charging(16, duration_s=5), True, "recently_started_charging"),
        (charging(16, duration_s=600), True, "charging"),
        (ChargerSample(cp_state=CpState.A, ocpp_state=OcppState.AVAILABLE), True, "idle"),
    ],
)
async def test_status_mapping_from_the_api(
    edge: Edge, sample: ChargerSample | None, online: bool, expected: str
) -> None:
    edge.controller.samples[PLUG_B1] = sample
    if not online:
        edge.controller.offline.add(PLUG_B1)
    r = await edge.client.get(edge.path(EVSE_B, "status"), headers=auth(edge.token_b))
    (plug,) = r.json()
    assert plug["status"] == expected
    assert plug["plug_uuid"] == PLUG_B1
    assert plug["evse_uuid"] == EVSE_B
    assert plug["dyn_current_limit"] == 16.0
    if not online or sample is None:
        assert (plug["current_l1"], plug["power"]) == (0.0, 0.0)


async def test_targets_and_tokens_survive_a_restart(edge: Edge) -> None:
    h = auth(edge.token_a)
    await edge.client.post(edge.path(), headers=h, json={"current": 14, "duration": 7200})
    before = (await edge.client.get(edge.path(), headers=h)).json()
    url, clock, tokens = edge.url, edge.clock, (edge.token_a, edge.token_b)
    await stop_edge(edge)

    await clock.advance(600)  # the edge was down for ten minutes
    restarted = await start_edge(url, clock, tokens=tokens)
    try:
        after = await restarted.client.get(restarted.path(), headers=h)
        assert after.status_code == 200  # the token still works
        assert after.json() == before
        assert restarted.targets.cap_a(EVSE_A) == 14
        await clock.advance(6600)
        assert (await restarted.client.get(restarted.path(), headers=h)).json()["current"] is None
    finally:
        await stop_edge(restarted)


def test_openapi_documents_auth_and_every_error(edge: Edge) -> None:
    spec = edge.app.openapi()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "evsetoken",
        "description": "Per-EVSE token (`fuseguard token create --evse UUID`).",
    }
    paths = spec["paths"]
    base = "/edgedevices/{edge_device_id}/evses/{uuid}"
    assert set(paths) == {f"{base}/currentsettings", f"{base}/status"}
    for path, ops in paths.items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert {"401", "403", "404", "422"} <= codes, (path, method)
            assert op["security"] == [{"APIKeyHeader": []}]
    post = paths[f"{base}/currentsettings"]["post"]
    assert "201" in post["responses"]
    assert "400" in post["responses"]


@pytest.mark.parametrize(
    ("method", "suffix", "allow"),
    [("PUT", "currentsettings", "DELETE, GET, POST"), ("POST", "status", "GET")],
)
async def test_wrong_method_is_405_listing_every_method_of_the_path(
    edge: Edge, method: str, suffix: str, allow: str
) -> None:
    path = edge.path().rsplit("/", 1)[0] + "/" + suffix
    r = await edge.client.request(method, path, headers=auth(edge.token_a))
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    body = r.json()
    assert set(body) == ERROR_KEYS
    assert (body["code"], body["name"]) == (405, "MethodNotAllowed")
