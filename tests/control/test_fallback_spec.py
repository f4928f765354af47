"""The charger-side fallback reaches the controller's spec through the one config translation
(``config/controller.py``, used by run, demo and simulate), per driver as the driver arms it."""

from __future__ import annotations

import math
from typing import Any

import pytest

from fuseguard.config.controller import charger_specs
from fuseguard.config.models import ChargerConfig, PlugConfig

UUID = f"{1:032x}"


def _charger(**fields: Any) -> ChargerConfig:
    return ChargerConfig(
        id="cp1", evse_uuid=UUID, plugs=[PlugConfig(uuid=f"{2:032x}", label="P")], **fields
    )


@pytest.mark.parametrize(
    ("fields", "fallback_a"),
    [
        ({}, 0),  # a Bender: safe current 0 unless configured
        ({"safe_current_a": 6}, 6),  # armed with the default 60 s timeout
        ({"safe_current_a": 10, "safe_timeout_s": 0}, 0),  # no watchdog: it keeps its limit
        ({"driver": "ocpp", "ocpp_id": "cp-1"}, 6),  # the safe profile's default
        ({"driver": "ocpp", "ocpp_id": "cp-1", "safe_current_a": 0}, 0),
        ({"driver": "ocpp", "ocpp_id": "cp-1", "safe_current_a": 8}, 8),
        ({"driver": "clemap", "max_current_a": 25}, 25),  # the child's own, unknown: its max
        ({"driver": "clemap", "safe_current_a": 10}, 10),  # its FallbackCurrentLimit
    ],
)
def test_the_spec_carries_what_the_driver_falls_back_to(
    fields: dict[str, Any], fallback_a: int
) -> None:
    (spec,) = charger_specs([_charger(**fields)])
    assert spec.fallback_a == fallback_a


def test_every_plug_of_a_charger_gets_it() -> None:
    ch = ChargerConfig(
        id="cp1",
        evse_uuid=UUID,
        safe_current_a=6,
        plugs=[PlugConfig(uuid=f"{i:032x}", label=f"P{i}") for i in (2, 3)],
    )
    assert [s.fallback_a for s in charger_specs([ch])] == [6, 6]


@pytest.mark.parametrize(
    ("fields", "after_s"),
    [
        ({"safe_current_a": 6, "safe_timeout_s": 9}, 9.0),
        ({"safe_current_a": 6, "safe_timeout_s": 0}, math.inf),  # no watchdog
        ({"driver": "ocpp", "ocpp_id": "cp-1"}, 30.0),  # the lease given below
        ({"driver": "clemap"}, 60.0),  # the child's keep-alive timeout, as the factory sets it
        ({"driver": "clemap", "safe_timeout_s": 0}, 120.0),
    ],
)
def test_the_spec_carries_the_watchdog_timeout(fields: dict[str, Any], after_s: float) -> None:
    (spec,) = charger_specs([_charger(**fields)], ocpp_lease_s=30.0)
    assert spec.fallback_after_s == after_s


def test_without_a_lease_the_shortest_is_assumed() -> None:
    (spec,) = charger_specs([_charger(driver="ocpp", ocpp_id="cp-1")])
    assert spec.fallback_after_s == 5.0  # the lowest [api.ocpp] lease_s: the earliest reserve
