"""The virtual device's admin API (in-process, Starlette TestClient)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from fuseguard.model.clock import VirtualClock
from fuseguard.sim.bender import BenderController, BenderDeviceConfig
from fuseguard.sim.bender_rest import GARBAGE_BODY, create_bender_rest_app


def test_admin_plug_authorize_fault_and_text_api() -> None:
    ctl = BenderController(VirtualClock(), BenderDeviceConfig(), connector_count=2)
    with TestClient(create_bender_rest_app(ctl)) as client:
        r = client.post("/sim/connectors/1/plug", json={"phases": 1, "soc": 0.3})
        assert r.status_code == 200
        assert r.json()["cp_state"] == "B"
        assert client.post("/sim/connectors/1/plug", json={}).status_code == 409
        assert client.post("/sim/connectors/9/unplug").status_code == 404
        r = client.post("/sim/connectors/1/authorize", json={"uid": "abc"})
        assert r.json()["auth_state"] == "authorized_for_charging"
        assert (
            client.post("/sim/connectors/1/hems", json={"current_a": 10}).json()["sig_current_a"]
            == 10
        )
        assert client.post("/sim/connectors/1/soc", json={"soc": 0.9}).json()["vehicle_soc"] == 0.9
        assert client.post("/sim/connectors/2/soc", json={"soc": 0.9}).status_code == 409
        text = client.get("/rest/full_state")
        assert text.headers["content-type"].startswith("text/plain")
        assert "sig_current:10\n" in text.text
        assert client.get("/rest/sig_current").text == "sig_current:10\n"

        r = client.post("/sim/connectors/1/fault", json={"kind": "garbage"})
        assert r.json()["faults"] == ["garbage"]
        assert client.get("/rest/full_state").text == GARBAGE_BODY
        assert client.delete("/sim/connectors/1/fault").json()["faults"] == []

        r = client.post("/sim/fault", json={"kind": "rcd_trip"})
        assert [c["ocpp_state"] for c in r.json()] == ["faulted", "faulted"]
        assert "errors:rcmb_triggered;rcd_triggered\n" in client.get("/rest/full_state").text
        r = client.delete("/sim/fault", params={"kind": "rcd_trip"})
        assert [c["faults"] for c in r.json()] == [[], []]
        assert client.post("/sim/connectors/1/stop").json()["ocpp_state"] == "finishing"
        assert client.post("/sim/connectors/1/unplug").json()["ocpp_state"] == "available"
        assert len(client.get("/sim/state").json()) == 2
        assert client.post("/sim/fault", json={"kind": "bogus"}).status_code == 422
