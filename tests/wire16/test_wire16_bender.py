"""Issue 16, Bender virtual device: the key-set switch and the reachable panel states."""

from __future__ import annotations

from fastapi.testclient import TestClient

from fuseguard.devices.bender.rest import BenderRestState, parse_full_state
from fuseguard.model.clock import VirtualClock
from fuseguard.model.status import ConnState
from fuseguard.sim.bender import BenderController, BenderDeviceConfig, Firmware
from fuseguard.sim.bender_panel import KeySet
from fuseguard.sim.bender_rest import create_bender_rest_app
from fuseguard.sim.vehicle import SimVehicle
from fuseguard.wire.bender import KEYS_5_22

#: The key column of seed 003 (firmware 5.33), in its order.
SEED_003_KEYS = [
    "conn_state",
    "auth_state",
    "auth_uid",
    "time_since_charging_start",
    "meter_wh",
    "power_w",
    "transaction_wh",
    "display_text",
    "cp_id",
    "ocpp_state",
    "type2_state",
    "type2_proximity",
    "sig_current",
    "schuko_state",
    "backend_conn_state",
    "free_charging",
    "slave_state",
    "ocpp_meter_cfg",
    "ocpp_meter_serial",
    "current_a",
    "energy_man_current",
    "ambient_temp",
    "firmware_ver",
    "cc_serial_n",
    "manuf_serial_n",
    "con_cycles_schuko",
    "con_cycles_type2",
    "max_current",
    "rcmb_state",
    "rcmb_max",
    "rcmb_values",
    "cable_attached",
    "schuko_cfg",
    "rcd_state",
    "mcb_type2_state",
    "mcb_schuko_state",
    "cp_vendor",
    "errors",
    "cp_model",
    "voltage_v",
    "wlan_state",
]
TARIFF_XML = (
    "<tariffInfoResponse> <tariffEntry> <chargeMode> <maxPower>3.7</maxPower> "
    "<currentType>AC</currentType> </chargeMode> <hourPrice>60</hourPrice> </tariffEntry>"
)


def _controller(**cfg: object) -> BenderController:
    return BenderController(VirtualClock(), BenderDeviceConfig(**cfg))  # type: ignore[arg-type]


def test_key_sets_firmware_43_and_exact_seed_41():
    assert len(SEED_003_KEYS) == 41
    ctl = _controller()
    keys = list(ctl.full_state())
    assert len(keys) == 43
    assert [k for k in keys if k not in ("rcmb_max_values", "rcmb_current_values")] == list(
        SEED_003_KEYS
    )
    ctl.config.key_set = KeySet.SEED
    assert list(ctl.full_state()) == SEED_003_KEYS
    old = _controller(firmware=Firmware.V5_22, key_set=KeySet.SEED)
    assert tuple(old.full_state()) == KEYS_5_22  # the seed describes 5.33 only


def test_panel_states_reach_full_state_and_the_driver():
    ctl = _controller()
    with TestClient(create_bender_rest_app(ctl)) as http:
        assert http.get("/sim/panel").json() == {
            "key_set": "firmware",
            "schuko_cfg": False,
            "schuko_state": "idle",
            "backend_conn_state": "pending",
            "wlan_state": "wlan_disconnected",
            "display_text": "",
            "con_cycles_schuko": 0,
        }
        refused = http.patch("/sim/panel", json={"schuko_state": "connected"})
        assert refused.status_code == 409 and "disabled" in refused.text
        r = http.patch(
            "/sim/panel",
            json={
                "key_set": "seed",
                "schuko_cfg": True,
                "schuko_state": "connected",
                "backend_conn_state": "connected",
                "wlan_state": "wlan_connected",
                "display_text": TARIFF_XML,
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["con_cycles_schuko"] == 1
        text = http.get("/rest/full_state").text
        state = parse_full_state(text)
        assert len(state) == 41
        assert state["schuko_cfg"] == "enable"
        assert state["mcb_schuko_state"] == "okay"
        assert state["schuko_state"] == "connected"
        assert state["conn_state"] == "vehicle_connected_schuko"
        assert state["backend_conn_state"] == "connected"
        assert state["wlan_state"] == "wlan_connected"
        assert state["display_text"] == TARIFF_XML
        assert http.get("/rest/display_text").text == f"display_text:{TARIFF_XML}\n"
        assert BenderRestState.from_text(text).conn_state is ConnState.VEHICLE_CONNECTED_SCHUKO

        http.patch("/sim/panel", json={"schuko_state": "power_on"})
        state = parse_full_state(http.get("/rest/full_state").text)
        assert state["conn_state"] == "vehicle_charging_schuko"
        assert state["con_cycles_schuko"] == "1"  # connected -> power_on is the same cycle
        ctl.connector(1).plug_in(SimVehicle())
        assert ctl.full_state()["conn_state"] == "vehicle_connected_type2"  # Type 2 wins

        for bad in (
            {"display_text": "two\nlines"},
            {"display_text": "x" * 3000},
            {"wlan_state": "up"},
            {"colour": "red"},
        ):
            assert http.patch("/sim/panel", json=bad).status_code == 422, bad
        http.patch("/sim/panel", json={"schuko_cfg": False})
        assert ctl.full_state()["schuko_state"] == "idle"


def test_backend_lost_fault_reaches_rest_and_modbus():
    ctl = _controller()
    with TestClient(create_bender_rest_app(ctl)) as http:
        http.patch("/sim/panel", json={"backend_conn_state": "connected"})
        assert http.post("/sim/fault", json={"kind": "backend_lost"}).status_code == 200
        assert http.get("/rest/backend_conn_state").text == "backend_conn_state:not_reacheable\n"
        assert ctl.connector(1).modbus_registers()[112] & (1 << 7)
        assert ctl.connector(1).ocpp_state.value == "available"  # charging is not affected
        http.delete("/sim/fault", params={"kind": "backend_lost"})
        assert http.get("/rest/backend_conn_state").text == "backend_conn_state:connected\n"
        assert not ctl.connector(1).modbus_registers()[112] & (1 << 7)
