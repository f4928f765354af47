"""TriggerMessage after an offer (the OCPP start-up race, docs/devices/ocpp.md "Triggers"): the
station asks a charge point for its status and meter values a few seconds after an offer to a
paused connector or a raise, bounded, and never when the charge point cannot or will not."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.v16 import call, call_result

from fuseguard.devices.ocpp.station import Station, StationConfig
from fuseguard.devices.ocpp.triggers import (
    TRIGGER_AFTER_OFFER_S,
    TRIGGER_REFILL_S_PER_CONNECTOR,
    TriggerBudget,
)
from fuseguard.model.clock import VirtualClock

FEATURES = "Core,SmartCharging,RemoteTrigger"


class FakeSession:
    """Answers every call at once as ``answers`` says; records the calls."""

    def __init__(self, features: str = FEATURES, trigger: Any = "Accepted") -> None:
        self.features = features
        self.trigger = trigger
        self.calls: list[Any] = []

    async def call(self, payload: Any, suppress: bool = True) -> Any:
        self.calls.append(payload)
        if isinstance(payload, call.GetConfiguration):
            keys = [{"key": "SupportedFeatureProfiles", "readonly": True, "value": self.features}]
            return call_result.GetConfiguration(configuration_key=keys)
        if isinstance(payload, call.ChangeConfiguration):
            return call_result.ChangeConfiguration(status="Accepted")
        if isinstance(payload, call.SetChargingProfile):
            return call_result.SetChargingProfile(status="Accepted")
        if isinstance(payload, call.TriggerMessage):
            if isinstance(self.trigger, Exception):
                raise self.trigger
            return call_result.TriggerMessage(status=self.trigger)
        raise AssertionError(payload)

    async def close(self, reason: str) -> None:
        return None

    def triggers(self, after: int = 0) -> list[str]:
        return [
            str(c.requested_message)
            for c in self.calls[after:]
            if isinstance(c, call.TriggerMessage)
        ]


async def ready_station(
    session: FakeSession, clock: VirtualClock, status: str = "SuspendedEVSE", **kw: Any
) -> Station:
    station = Station(StationConfig(identity="CP1", password=None, boot_wait_s=0.0), clock, **kw)
    station.on_status(1, status, "NoError", {})
    station.attach(session)  # type: ignore[arg-type]
    station.after_boot(session)  # type: ignore[arg-type]
    for _ in range(50):
        await clock.settle()
        if station.ready.is_set():
            break
    assert station.ready.is_set()
    return station


async def offer(station: Station, clock: VirtualClock, amps: int) -> None:
    await station.set_limit(1, amps)
    await clock.advance(TRIGGER_AFTER_OFFER_S[-1] + 1.0)


@pytest.mark.asyncio
async def test_an_offer_to_a_paused_car_asks_for_status_and_meter_values_a_few_times() -> None:
    clock = VirtualClock()
    session = FakeSession()
    station = await ready_station(session, clock)
    await station.set_limit(1, 0)
    mark = len(session.calls)
    await offer(station, clock, 16)
    asked = session.triggers(mark)
    rounds = len(TRIGGER_AFTER_OFFER_S)
    assert asked == ["StatusNotification", "MeterValues"] * rounds
    assert station.trigger_rounds == rounds
    await station.close()


@pytest.mark.asyncio
async def test_a_raise_of_a_charging_car_asks_for_meter_values_only() -> None:
    clock = VirtualClock()
    session = FakeSession()
    station = await ready_station(session, clock, status="Charging")
    await station.set_limit(1, 6)
    await clock.advance(20.0)
    mark = len(session.calls)
    await offer(station, clock, 16)
    assert session.triggers(mark) == ["MeterValues"] * len(TRIGGER_AFTER_OFFER_S)
    # a decrease or the same limit again asks nothing
    mark = len(session.calls)
    await offer(station, clock, 10)
    assert session.triggers(mark) == []
    await station.close()


@pytest.mark.asyncio
async def test_no_triggers_without_remote_trigger() -> None:
    clock = VirtualClock()
    session = FakeSession(features="Core,SmartCharging")
    station = await ready_station(session, clock)
    mark = len(session.calls)
    await offer(station, clock, 16)
    assert session.triggers(mark) == []
    assert not station.can_trigger
    await station.close()


@pytest.mark.parametrize(
    "answer",
    [
        "Rejected",
        "NotImplemented",
        "garbage" * 30,
        OcppNotImplemented(description="no"),
        TimeoutError(),
    ],
)
@pytest.mark.asyncio
async def test_a_refused_or_garbage_answer_stops_the_triggers_and_nothing_breaks(
    answer: Any,
) -> None:
    clock = VirtualClock()
    session = FakeSession(trigger=answer)
    station = await ready_station(session, clock)
    mark = len(session.calls)
    await offer(station, clock, 16)
    assert session.triggers(mark) == ["StatusNotification"]  # asked once, then never again
    assert not station.can_trigger
    mark = len(session.calls)
    await station.set_limit(1, 0)
    await offer(station, clock, 12)
    assert session.triggers(mark) == []
    assert station.sample(1).limit_a == 12  # the limits still go through
    await station.close()


@pytest.mark.asyncio
async def test_the_budget_grows_with_the_connectors_that_share_it() -> None:
    """One round at once per connector, one more per connector every 5 s (never below the
    floor it was made with); a round beyond that is refused, never queued."""
    clock = VirtualClock()
    floor = TriggerBudget(clock, per_s=1.0, burst=5)
    floor.share(2)  # few connectors: the floor
    assert sum(floor.take() for _ in range(10)) == 5
    budget = TriggerBudget(clock, per_s=1.0, burst=5)
    budget.share(60)
    budget.share(40)  # every station shares its connectors
    assert budget.connectors == 100
    assert sum(budget.take() for _ in range(200)) == 100
    assert budget.refused == 100
    await clock.advance(TRIGGER_REFILL_S_PER_CONNECTOR)
    assert sum(budget.take() for _ in range(200)) == 100  # 100 per 5 s
    await clock.advance(60.0)
    assert sum(budget.take() for _ in range(200)) == 100  # the burst caps the refill
    assert budget.spent == 300


@pytest.mark.asyncio
async def test_100_charge_points_offered_current_at_once_are_all_asked() -> None:
    """A load drop offers every car current at once: with one budget of the central system
    shared by 100 connectors every charge point gets both rounds (round 11: a fixed bucket of
    20 rounds asked a fifth of them; the others waited for their next MeterValues)."""
    clock = VirtualClock()
    budget = TriggerBudget(clock)
    sessions = [FakeSession() for _ in range(100)]
    stations = [await ready_station(s, clock, triggers=budget) for s in sessions]
    assert budget.connectors == 100
    await clock.advance(TRIGGER_REFILL_S_PER_CONNECTOR)  # the boot triggers are not rounds
    await asyncio.gather(*(st.set_limit(1, 16) for st in stations))
    await clock.advance(TRIGGER_AFTER_OFFER_S[-1] + 1.0)
    assert [st.trigger_rounds for st in stations] == [len(TRIGGER_AFTER_OFFER_S)] * 100
    assert budget.refused == 0
    for st in stations:
        await st.close()


@pytest.mark.asyncio
async def test_the_shared_budget_bounds_the_rounds_across_charge_points() -> None:
    """Charge points offered current again and again: the rounds beyond the budget (one per
    connector every 5 s) are skipped."""
    clock = VirtualClock()
    budget = TriggerBudget(clock, per_s=1.0, burst=5)
    sessions = [FakeSession() for _ in range(20)]
    stations = [await ready_station(s, clock, triggers=budget) for s in sessions]
    started = clock.monotonic()
    for _ in range(10):  # a pause and an offer every 3.5 s: a round each after 3 s
        await asyncio.gather(*(st.set_limit(1, 0) for st in stations))
        await asyncio.gather(*(st.set_limit(1, 16) for st in stations))
        await clock.advance(3.5)
    span_s = clock.monotonic() - started
    rounds = sum(st.trigger_rounds for st in stations)
    assert rounds <= 20 + span_s * 20 / TRIGGER_REFILL_S_PER_CONNECTOR + 1
    assert budget.refused > 0
    assert rounds == budget.spent
    for st in stations:
        await st.close()


@pytest.mark.asyncio
async def test_a_boot_trigger_that_raises_anything_does_not_end_the_set_up() -> None:
    """The TriggerMessages right after the boot are best effort: an exception the call mapping
    does not know (a library error on a garbage answer) is logged, and the profiles still go in
    (before round 9's split only refusals and timeouts were caught there)."""
    clock = VirtualClock()
    session = FakeSession(trigger=ValueError("garbage TriggerMessage.conf"))
    station = await ready_station(session, clock)  # asserts: ready
    assert station.sample(1).errors == ()
    await station.set_limit(1, 10)
    assert station.sample(1).limit_a == 10
    await station.close()
