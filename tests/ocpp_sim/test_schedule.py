"""OCPP 1.6 profile stacking (section 3.13) in the virtual charge point's pure schedule module."""

from __future__ import annotations

from typing import Any

import pytest

from fuseguard.sim.ocpp.schedule import (
    DAY_S,
    ProfileError,
    ProfileStack,
    Purpose,
    parse_time,
    profile_from_wire,
)

T0 = parse_time("2026-01-05T00:00:00Z", "t0")  # a Monday


def iso(t_s: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t_s, UTC).isoformat()


def wire(
    pid: int,
    level: int,
    purpose: str,
    periods: list[tuple[int, float]],
    *,
    kind: str = "Absolute",
    start: float | None = T0,
    **extra: Any,
) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "charging_rate_unit": extra.pop("unit", "A"),
        "charging_schedule_period": [
            {"start_period": s, "limit": lim, **extra.pop("period_extra", {})} for s, lim in periods
        ],
    }
    if start is not None:
        schedule["start_schedule"] = iso(start)
    if "duration" in extra:
        schedule["duration"] = extra.pop("duration")
    raw = {
        "charging_profile_id": pid,
        "stack_level": level,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": kind,
        "charging_schedule": schedule,
    }
    for key in ("valid_from", "valid_to"):
        if key in extra:
            raw[key] = iso(extra.pop(key))
    raw.update(extra)
    return raw


def stack(connectors: int = 2) -> ProfileStack:
    return ProfileStack(connectors=connectors, max_current_a=32.0)


def put(s: ProfileStack, cid: int, raw: dict[str, Any], tx: dict[int, int] | None = None) -> None:
    s.install(profile_from_wire(cid, raw), tx or {})


def test_no_profile_gives_the_maximum() -> None:
    assert stack().limit_a(1, T0) == 32.0


def test_higher_stack_level_prevails_and_lease_expiry_falls_back() -> None:
    s = stack()
    put(s, 1, wire(1, 0, "TxDefaultProfile", [(0, 6)]))
    put(s, 1, wire(2, 1, "TxDefaultProfile", [(0, 16)], valid_to=T0 + 60))
    assert s.limit_a(1, T0 + 10) == 16.0
    assert s.limit_a(1, T0 + 60) == 6.0  # validTo is exclusive: the safe profile below
    assert s.limit_a(2, T0 + 10) == 32.0  # other connector untouched


def test_valid_from_delays_a_profile() -> None:
    s = stack()
    put(s, 1, wire(1, 0, "TxDefaultProfile", [(0, 6)]))
    put(s, 1, wire(2, 3, "TxDefaultProfile", [(0, 20)], valid_from=T0 + 100))
    assert s.limit_a(1, T0 + 99) == 6.0
    assert s.limit_a(1, T0 + 100) == 20.0


def test_same_id_or_same_level_and_purpose_replaces() -> None:
    s = stack()
    put(s, 1, wire(7, 1, "TxDefaultProfile", [(0, 10)]))
    put(s, 1, wire(7, 2, "TxDefaultProfile", [(0, 12)]))
    assert len(s.profiles) == 1
    put(s, 1, wire(8, 2, "TxDefaultProfile", [(0, 14)]))
    assert [p.profile_id for p in s.profiles] == [8]
    assert s.limit_a(1, T0) == 14.0


def test_connector_default_overrides_connector_zero_default() -> None:
    s = stack()
    put(s, 0, wire(1, 5, "TxDefaultProfile", [(0, 10)]))
    put(s, 2, wire(2, 0, "TxDefaultProfile", [(0, 20)]))
    assert s.limit_a(1, T0) == 10.0
    assert s.limit_a(2, T0) == 20.0


def test_charge_point_max_caps_tx_and_tx_default() -> None:
    s = stack()
    put(s, 0, wire(1, 0, "ChargePointMaxProfile", [(0, 12)]))
    put(s, 1, wire(2, 0, "TxDefaultProfile", [(0, 20)]))
    assert s.limit_a(1, T0) == 12.0
    with pytest.raises(ProfileError):
        put(s, 1, wire(3, 0, "ChargePointMaxProfile", [(0, 12)]))


def test_tx_profile_needs_a_transaction_and_overrides_default() -> None:
    s = stack()
    put(s, 1, wire(1, 0, "TxDefaultProfile", [(0, 20)]))
    with pytest.raises(ProfileError):
        put(s, 1, wire(2, 0, "TxProfile", [(0, 8)]))
    put(s, 1, wire(2, 0, "TxProfile", [(0, 8)], transaction_id=5), {1: 5})
    assert s.limit_a(1, T0, T0, 5) == 8.0
    assert s.limit_a(1, T0) == 20.0  # no transaction: the TxProfile does not apply
    s.end_transaction(1)
    assert all(p.purpose is not Purpose.TX for p in s.profiles)


def test_relative_schedule_runs_from_transaction_start() -> None:
    s = stack()
    put(s, 1, wire(9, 0, "TxProfile", [(0, 6), (600, 16)], kind="Relative", start=None), {1: 1})
    tx_start = T0 + 1000
    assert s.limit_a(1, tx_start + 599, tx_start, 1) == 6.0
    assert s.limit_a(1, tx_start + 600, tx_start, 1) == 16.0


def test_recurring_daily_and_duration() -> None:
    s = stack()
    night = wire(
        3,
        0,
        "TxDefaultProfile",
        [(0, 16), (6 * 3600, 8)],
        kind="Recurring",
        recurrency_kind="Daily",
        duration=12 * 3600,
    )
    put(s, 1, night)
    assert s.limit_a(1, T0 + 3 * DAY_S + 3600) == 16.0
    assert s.limit_a(1, T0 + 3 * DAY_S + 7 * 3600) == 8.0
    assert s.limit_a(1, T0 + 3 * DAY_S + 13 * 3600) == 32.0  # after duration: nothing applies


def test_power_limit_converted_with_phases() -> None:
    s = stack()
    raw = wire(1, 0, "TxDefaultProfile", [(0, 6900)], unit="W")
    raw["charging_schedule"]["charging_schedule_period"][0]["number_phases"] = 3
    put(s, 1, raw)
    assert s.limit_a(1, T0) == pytest.approx(10.0)


def test_clear_by_id_and_by_criteria() -> None:
    s = stack()
    put(s, 1, wire(1, 0, "TxDefaultProfile", [(0, 6)]))
    put(s, 1, wire(2, 1, "TxDefaultProfile", [(0, 16)]))
    put(s, 0, wire(3, 0, "ChargePointMaxProfile", [(0, 20)]))
    assert s.clear(profile_id=2)
    assert not s.clear(profile_id=2)
    assert s.clear(purpose=Purpose.CHARGE_POINT_MAX)
    assert s.clear()
    assert s.profiles == []


def test_composite_schedule_merges_periods() -> None:
    s = stack()
    put(s, 1, wire(1, 0, "TxDefaultProfile", [(0, 6)]))
    put(s, 1, wire(2, 1, "TxDefaultProfile", [(0, 16), (300, 10)], valid_to=T0 + 600))
    assert s.composite(1, T0, 900) == [(0.0, 16.0), (300.0, 10.0), (600.0, 6.0)]


@pytest.mark.parametrize(
    "bad",
    [
        {"stack_level": 99},
        {"charging_profile_kind": "Sometimes"},
        {"charging_schedule": {"charging_rate_unit": "A", "charging_schedule_period": []}},
        {
            "charging_schedule": {
                "charging_rate_unit": "A",
                "charging_schedule_period": [{"start_period": 0, "limit": float("nan")}],
            }
        },
        {
            "charging_schedule": {
                "charging_rate_unit": "A",
                "charging_schedule_period": [{"start_period": 5, "limit": 6}],
            }
        },
    ],
)
def test_bad_profiles_are_refused(bad: dict[str, Any]) -> None:
    raw = wire(1, 0, "TxDefaultProfile", [(0, 6)])
    raw.update(bad)
    with pytest.raises((ProfileError, ValueError)):
        put(stack(), 1, raw)


def test_too_many_profiles_refused() -> None:
    s = ProfileStack(connectors=1, max_current_a=32.0, max_profiles=2)
    put(s, 1, wire(1, 0, "TxDefaultProfile", [(0, 6)]))
    put(s, 1, wire(2, 1, "TxDefaultProfile", [(0, 6)]))
    with pytest.raises(ProfileError):
        put(s, 1, wire(3, 2, "TxDefaultProfile", [(0, 6)]))


def test_decimal_limits_from_the_json_parser() -> None:
    from decimal import Decimal

    s = stack()
    put(s, 1, wire(1, 0, "TxDefaultProfile", [(0, Decimal("13.5"))]))  # type: ignore[list-item]
    assert s.limit_a(1, T0) == 13.5
