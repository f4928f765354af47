"""One connection of the virtual charge point: an ``ocpp.v16.ChargePoint`` with its handlers.

The link is the protocol side only (strict JSON-schema validation both ways by the ``ocpp``
library); every answer comes from its :class:`~fuseguard.sim.ocpp.station.VirtualOcppStation`,
which outlives the connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action

from ocpp import routing

_F = TypeVar("_F", bound=Callable[..., Any])


def on(action: str) -> Callable[[_F], _F]:
    """``ocpp.routing.on`` with a type (the library is untyped)."""
    return cast("Callable[[_F], _F]", routing.on(action))


def after(action: str) -> Callable[[_F], _F]:
    """``ocpp.routing.after`` with a type."""
    return cast("Callable[[_F], _F]", routing.after(action))


class Answers(Protocol):
    """What the link needs from its station (:class:`~fuseguard.sim.ocpp.station.
    VirtualOcppStation`)."""

    @property
    def identity(self) -> str: ...

    async def answer_delay(self) -> None: ...

    def get_configuration(
        self, keys: list[str] | None
    ) -> tuple[list[dict[str, Any]], list[str]]: ...

    def change_configuration(self, key: str, value: str) -> str: ...

    def set_charging_profile(self, connector_id: int, raw: dict[str, Any]) -> str: ...

    def clear_charging_profile(
        self, pid: int | None, connector_id: int | None, purpose: str | None, level: int | None
    ) -> str: ...

    def composite_schedule(self, connector_id: int, duration: int, unit: str | None) -> Any: ...

    def trigger_status(self, message: str, connector_id: int | None) -> str: ...

    async def triggered(self, link: Link, message: str, connector_id: int | None) -> None: ...

    def remote_start(self, id_tag: str, connector_id: int | None) -> str: ...

    def remote_stop(self, transaction_id: int) -> str: ...


class Link(ChargePoint):  # type: ignore[misc]  # the ocpp library is untyped
    """The charge point's end of one WebSocket connection to its central system."""

    def __init__(self, station: Answers, connection: Any) -> None:
        super().__init__(station.identity, connection, response_timeout=10)
        self.station = station

    @on(Action.get_configuration)
    async def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        await self.station.answer_delay()
        known, unknown = self.station.get_configuration(key)
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    async def on_change_configuration(self, key: str, value: str, **_: Any) -> Any:
        await self.station.answer_delay()
        return call_result.ChangeConfiguration(status=self.station.change_configuration(key, value))

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any], **_: Any
    ) -> Any:
        await self.station.answer_delay()
        status = self.station.set_charging_profile(connector_id, cs_charging_profiles)
        return call_result.SetChargingProfile(status=status)

    @on(Action.clear_charging_profile)
    async def on_clear_charging_profile(
        self,
        id: int | None = None,  # the OCPP field name
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
        **_: Any,
    ) -> Any:
        await self.station.answer_delay()
        status = self.station.clear_charging_profile(
            id, connector_id, charging_profile_purpose, stack_level
        )
        return call_result.ClearChargingProfile(status=status)

    @on(Action.get_composite_schedule)
    async def on_get_composite_schedule(
        self, connector_id: int, duration: int, charging_rate_unit: str | None = None, **_: Any
    ) -> Any:
        await self.station.answer_delay()
        return self.station.composite_schedule(connector_id, duration, charging_rate_unit)

    @on(Action.trigger_message)
    async def on_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> Any:
        await self.station.answer_delay()
        return call_result.TriggerMessage(
            status=self.station.trigger_status(requested_message, connector_id)
        )

    @after(Action.trigger_message)
    async def after_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> None:
        await self.station.triggered(self, requested_message, connector_id)

    @on(Action.remote_start_transaction)
    async def on_remote_start_transaction(
        self, id_tag: str, connector_id: int | None = None, **_: Any
    ) -> Any:
        await self.station.answer_delay()
        return call_result.RemoteStartTransaction(
            status=self.station.remote_start(id_tag, connector_id)
        )

    @on(Action.remote_stop_transaction)
    async def on_remote_stop_transaction(self, transaction_id: int, **_: Any) -> Any:
        await self.station.answer_delay()
        return call_result.RemoteStopTransaction(status=self.station.remote_stop(transaction_id))


__all__ = ["Link"]
