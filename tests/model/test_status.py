import pytest

from fuseguard.model.status import (
    ConnState,
    CpState,
    OcppState,
    PlugStatus,
    Type2Proximity,
    Type2State,
    conn_state_from_cp,
    cp_from_register_122,
    cp_from_type2_state,
    cp_to_register_122,
    plug_status,
    type2_state_from_cp,
)


def test_vocabularies_match_the_seeds() -> None:
    assert [s.value for s in PlugStatus] == [
        "charging", "recently_started_charging", "idle", "connected", "discharging", "error",
        "offline", "cloud_offline", "init", "stopped", "starting", "producing", "unknown",
    ]  # fmt: skip
    assert [s.value for s in OcppState] == [
        "available", "occupied", "reserved", "unavailable", "faulted", "preparing", "charging",
        "suspendedevse", "suspendedev", "finishing",
    ]  # fmt: skip
    assert Type2Proximity("32").cable_rating_a == 32
    assert Type2Proximity.CABLE_ATTACHED.cable_rating_a is None


def test_ocpp_ordinals_are_register_104() -> None:
    assert OcppState.AVAILABLE.ordinal == 0
    assert OcppState.CHARGING.ordinal == 6
    assert OcppState.from_ordinal(9) is OcppState.FINISHING
    with pytest.raises(ValueError, match="out of range"):
        OcppState.from_ordinal(10)


@pytest.mark.parametrize("cp", list(CpState))
def test_cp_mappings_round_trip(cp: CpState) -> None:
    assert cp_from_register_122(cp_to_register_122(cp)) is cp
    if cp is not CpState.F:
        assert cp_from_type2_state(type2_state_from_cp(cp)) is cp
    else:
        assert type2_state_from_cp(cp) is Type2State.E


def test_conn_state() -> None:
    assert conn_state_from_cp(CpState.A) is ConnState.NO_VEHICLE_CONNECTED
    assert conn_state_from_cp(CpState.B) is ConnState.VEHICLE_CONNECTED_TYPE2
    assert conn_state_from_cp(CpState.D) is ConnState.VEHICLE_CHARGING_TYPE2
    assert conn_state_from_cp(CpState.F) is ConnState.VEHICLE_CONNECTOR_ERROR
    with pytest.raises(ValueError, match="not a CP state"):
        cp_from_register_122(0)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"online": False, "cp": CpState.C}, PlugStatus.OFFLINE),
        ({"online": True, "cp": None}, PlugStatus.INIT),
        ({"online": True, "cp": CpState.E}, PlugStatus.ERROR),
        ({"online": True, "cp": CpState.B, "ocpp": OcppState.FAULTED}, PlugStatus.ERROR),
        ({"online": True, "cp": CpState.B, "has_errors": True}, PlugStatus.ERROR),
        ({"online": True, "cp": CpState.B, "ocpp": OcppState.FINISHING}, PlugStatus.STOPPED),
        ({"online": True, "cp": CpState.A, "ocpp": OcppState.UNAVAILABLE}, PlugStatus.STOPPED),
        (
            {"online": True, "cp": CpState.C, "charging_for_s": 10},
            PlugStatus.RECENTLY_STARTED_CHARGING,
        ),
        ({"online": True, "cp": CpState.C, "charging_for_s": 600}, PlugStatus.CHARGING),
        ({"online": True, "cp": CpState.D}, PlugStatus.CHARGING),
        (
            {"online": True, "cp": CpState.B, "ocpp": OcppState.PREPARING, "offered_current_a": 16},
            PlugStatus.STARTING,
        ),
        ({"online": True, "cp": CpState.B, "ocpp": OcppState.SUSPENDEDEVSE}, PlugStatus.CONNECTED),
        ({"online": True, "cp": CpState.B, "ocpp": OcppState.SUSPENDEDEV}, PlugStatus.CONNECTED),
        ({"online": True, "cp": CpState.A, "ocpp": OcppState.AVAILABLE}, PlugStatus.IDLE),
    ],
)
def test_plug_status_rules(kwargs: dict[str, object], expected: PlugStatus) -> None:
    assert plug_status(**kwargs) is expected  # type: ignore[arg-type]
