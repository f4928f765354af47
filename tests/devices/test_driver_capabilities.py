"""Each driver declares the control protocols it implements, and satisfies exactly those.

The edge detects optional capabilities with ``isinstance`` on the runtime-checkable Protocols of
``control/ports.py`` (as evcc does with its optional charger interfaces), so a driver that claims
a capability must pass that check and one that does not claim it must not pass it by accident.
mypy checks the declared signatures, because each driver subclasses the Protocols it claims.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from fuseguard.control.ports import (
    Charger,
    GridMeter,
    SupportsLifecycle,
    SupportsPhaseSwitching,
    SupportsSafeCurrent,
    SupportsStartStop,
)
from fuseguard.devices.bender import BenderCharger
from fuseguard.devices.cemm import CemmClient, CemmGridMeter
from fuseguard.devices.clemap import ClemapChildCharger, ClemapEdgeClient, ClemapGridMeter
from fuseguard.model.clock import VirtualClock

#: The optional capabilities the edge detects with isinstance.
OPTIONAL: tuple[type, ...] = (
    SupportsLifecycle,
    SupportsSafeCurrent,
    SupportsStartStop,
    SupportsPhaseSwitching,
)
#: GridMeter and Charger share ``read``, so isinstance cannot tell them apart; declaration can.
PROTOCOLS: tuple[type, ...] = (GridMeter, Charger, *OPTIONAL)


def _clemap_client() -> ClemapEdgeClient:
    return ClemapEdgeClient(host="127.0.0.1", user="ems", password="secret-password")


DRIVERS: dict[str, tuple[Any, set[type]]] = {
    "bender": (
        lambda: BenderCharger(host="127.0.0.1"),
        {Charger, SupportsLifecycle, SupportsSafeCurrent},
    ),
    "cemm meter": (lambda: CemmGridMeter(CemmClient(host="127.0.0.1")), {GridMeter}),
    "clemap meter": (lambda: ClemapGridMeter(_clemap_client()), {GridMeter}),
    "clemap child": (
        lambda: ClemapChildCharger(_clemap_client(), VirtualClock()),
        {Charger, SupportsLifecycle},
    ),
}


@pytest.mark.parametrize("name", list(DRIVERS))
def test_driver_satisfies_exactly_the_protocols_it_claims(name: str) -> None:
    make, claimed = DRIVERS[name]
    driver = make()
    for proto in PROTOCOLS:
        # declared, not only structurally matching: the class subclasses what it claims
        declared = proto in type(driver).__mro__
        assert declared is (proto in claimed), (name, proto.__name__)
        if proto in claimed:
            assert isinstance(driver, proto), (name, proto.__name__)
        elif proto in OPTIONAL:
            # what the edge checks: an unclaimed capability never passes by accident
            assert not isinstance(driver, proto), (name, proto.__name__)


@pytest.mark.parametrize("name", list(DRIVERS))
def test_claimed_methods_are_coroutines(name: str) -> None:
    make, claimed = DRIVERS[name]
    driver = make()
    for proto in claimed:
        for method in ("read", "set_current_limit", "start", "close", "set_safe_current"):
            if hasattr(proto, method):
                assert inspect.iscoroutinefunction(getattr(driver, method)), (name, method)


async def test_lifecycle_close_never_raises_on_a_driver_that_never_started() -> None:
    for name, (make, claimed) in DRIVERS.items():
        if SupportsLifecycle in claimed:
            await make().close()  # nothing opened: nothing to fail
            assert name
