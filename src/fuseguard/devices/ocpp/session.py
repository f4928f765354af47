"""One charge point connection: an ``ocpp.v16.ChargePoint`` with fuseguard's handlers.

The session is the protocol side only: it answers what the charge point sends (strict JSON-schema
validation both ways, by the ``ocpp`` library) and forwards what it learnt to its
:class:`~fuseguard.devices.ocpp.station.Station`, which outlives the connection. Malformed frames
get the OCPP 1.6 CALLERROR (``FormationViolation``, ``ProtocolError``, ``NotImplemented``, ...)
and never end the connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import structlog
from ocpp.charge_point import (
    camel_to_snake_case,
    remove_nones,
    serialize_as_dict,
    snake_to_camel_case,
)
from ocpp.exceptions import (
    FormationViolationError,
    InternalError,
    OCPPError,
    ProtocolError,
)
from ocpp.exceptions import NotImplementedError as OcppNotImplementedError
from ocpp.messages import Call, CallError, CallResult, MessageType, unpack, validate_payload
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import (
    Action,
    DataTransferStatus,
    RegistrationStatus,
)

from fuseguard.devices.ocpp.wire import iso
from fuseguard.serving.throttle import LogThrottle
from ocpp import routing

if TYPE_CHECKING:
    from fuseguard.devices.ocpp.relay import Relay
    from fuseguard.devices.ocpp.station import Station

log = structlog.get_logger(__name__)

#: The ocpp library logs every frame at INFO; fuseguard logs what matters itself (structlog).
#: A child of the library's own ``ocpp`` logger, so one level switches both wire logs: warning
#: unless ``[logging] level = "debug"`` (:func:`fuseguard.logging.configure_logging`).
FRAME_LOG = logging.getLogger("ocpp.central_system")

MAX_UNIQUE_ID_CHARS = 36  # OCPP-J: the unique id is at most 36 characters
#: answers (CALLRESULT/CALLERROR) held for the outstanding call; the library's queue is unbounded,
#: and an answer with no call outstanding stayed in it for good (a charge point sending answers
#: nobody asked for grew the edge's memory without bound)
MAX_QUEUED_ANSWERS = 16

# The ocpp library raises its OCPP 2.x spellings; OCPP 1.6 spells these two differently.
_CODES_16 = {
    "FormatViolation": "FormationViolation",
    "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
}


_F = TypeVar("_F", bound=Callable[..., Any])


def on(action: str) -> Callable[[_F], _F]:
    """``ocpp.routing.on`` with a type (the library is untyped)."""
    return cast("Callable[[_F], _F]", routing.on(action))


def after(action: str) -> Callable[[_F], _F]:
    """``ocpp.routing.after`` with a type."""
    return cast("Callable[[_F], _F]", routing.after(action))


class Connection(Protocol):
    """What a session needs from its transport (a websockets connection, or a test double)."""

    async def send(self, message: str) -> None:
        """Send one text frame."""

    async def recv(self) -> str | bytes:
        """Receive one frame; raise when the connection is closed."""

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection."""


def _unique_id_of(raw: object) -> str:
    """The unique id of a frame that could not be unpacked, when one can be found."""
    try:
        data = json.loads(raw) if isinstance(raw, str | bytes) else None
    except (ValueError, UnicodeDecodeError):
        return "-1"
    if isinstance(data, list) and len(data) > 1 and isinstance(data[1], str):
        return data[1][:MAX_UNIQUE_ID_CHARS]
    return "-1"


def call_error_frame(unique_id: str, error: OCPPError) -> str:
    """An OCPP 1.6 CALLERROR frame for ``error`` (1.6 error-code spelling, short details)."""
    code = _CODES_16.get(error.code, error.code)
    description = str(error.description or error.default_description or "")[:255]
    cause = error.details.get("cause") if isinstance(error.details, dict) else None
    details = {"cause": str(cause)[:255]} if cause is not None else {}
    return CallError(unique_id, code, description, details).to_json()  # type: ignore[no-any-return]


def _check_shape(msg: Any) -> None:
    """Unpacked frames still may carry the wrong types; refuse them before routing."""
    uid = msg.unique_id
    if not isinstance(uid, str) or not 0 < len(uid) <= MAX_UNIQUE_ID_CHARS:
        raise ProtocolError(details={"cause": "unique id must be a string of 1-36 characters"})
    if isinstance(msg, Call):
        if not isinstance(msg.action, str) or len(msg.action) > 64:
            raise FormationViolationError(details={"cause": "action must be a short string"})
        if not isinstance(msg.payload, dict):
            raise FormationViolationError(details={"cause": "payload must be a JSON object"})


class OcppSession(ChargePoint):  # type: ignore[misc]  # the ocpp library is untyped
    """The central system's side of one charge point connection."""

    def __init__(
        self,
        identity: str,
        connection: Connection,
        station: Station,
        *,
        response_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(
            identity, connection, response_timeout=response_timeout_s, logger=FRAME_LOG
        )
        self.station = station
        self.call_errors_sent = 0
        self.stray_answers = 0
        # a charge point repeats whatever it sends: one line per burst of its CALLERRORs/strays
        self._log_throttle = LogThrottle()
        self._call_error_log = LogThrottle()
        #: local controller mode: the link to the operator's backend (set by the server)
        self.relay: Relay | None = None
        self._relayed: set[asyncio.Task[None]] = set()

    # --- framing ---------------------------------------------------------------------------

    async def route_message(self, raw_msg: str | bytes) -> None:
        """Route one frame; every malformed frame gets a CALLERROR, none ends the session."""
        try:
            msg = unpack(raw_msg)
            _check_shape(msg)
        except OCPPError as err:
            await self._reply_error(_unique_id_of(raw_msg), err, raw_msg)
            return
        if self.relay is not None:
            self._route_relayed(msg, raw_msg)
            return
        if msg.message_type_id == MessageType.Call:
            try:
                if msg.action in self.route_map:
                    await validate_payload(msg, self._ocpp_version)
                await self._handle_call(msg)
            except OCPPError as err:
                await self._reply_error(msg.unique_id, err, msg.action)
            except Exception as err:  # a handler bug must not end the session
                log.exception("ocpp_handler_error", device=self.id, reason=repr(err))
                await self._reply_error(msg.unique_id, InternalError(), msg.action)
        elif isinstance(msg, CallResult | CallError):
            self._queue_answer(msg)

    def _route_relayed(self, msg: Any, raw: str | bytes) -> None:
        """Local controller mode: CALLs go upstream (in a task: the read loop must go on)."""
        assert self.relay is not None
        text = raw.decode() if isinstance(raw, bytes) else raw
        if msg.message_type_id == MessageType.Call:
            task = asyncio.create_task(self._relay_call(msg, text))
            self._relayed.add(task)
            task.add_done_callback(self._relayed.discard)
        elif not self.relay.charge_point_answer(msg.unique_id, text):
            self._queue_answer(msg)

    def _queue_answer(self, msg: Any) -> None:
        """An answer goes to the outstanding call; one nobody waits for is dropped (bounded)."""
        if self._call_lock.locked() and self._response_queue.qsize() < MAX_QUEUED_ANSWERS:
            self._response_queue.put_nowait(msg)
            return
        self.stray_answers += 1
        suppressed = self._log_throttle.admit()
        if suppressed is not None:
            log.warning("ocpp_stray_answer", device=self.id, reason="no call outstanding",
                        unique_id=str(msg.unique_id)[:MAX_UNIQUE_ID_CHARS],
                        suppressed=suppressed)  # fmt: skip

    async def _relay_call(self, msg: Any, raw: str) -> None:
        assert self.relay is not None
        local = await self.local_answer(msg)
        answer = await self.relay.charge_point_call(msg.action, raw, local)
        await self._send(answer)
        if msg.action == "BootNotification":
            self.station.after_boot(self)

    async def local_answer(self, msg: Any) -> str:
        """fuseguard's own answer frame to a CALL (its handler runs), without sending it."""
        try:
            handlers = self.route_map.get(msg.action)
            if handlers is None or "_on_action" not in handlers:
                raise OcppNotImplementedError(details={"cause": f"no handler for {msg.action}"})
            await validate_payload(msg, self._ocpp_version)
            response = handlers["_on_action"](**camel_to_snake_case(msg.payload))
            if asyncio.iscoroutine(response):
                response = await response
            payload = snake_to_camel_case(remove_nones(serialize_as_dict(response)))
            result = msg.create_call_result(payload)
            await validate_payload(result, self._ocpp_version)
            return str(result.to_json())
        except OCPPError as err:
            return call_error_frame(msg.unique_id, err)
        except Exception as err:
            log.exception("ocpp_handler_error", device=self.id, reason=repr(err))
            return call_error_frame(msg.unique_id, InternalError())

    async def _reply_error(self, unique_id: str, error: OCPPError, what: object) -> None:
        self.call_errors_sent += 1
        suppressed = self._call_error_log.admit()
        if suppressed is not None:
            log.warning(
                "ocpp_call_error",
                device=self.id,
                reason=f"{error.code}: {error.details or error.description}"[:300],
                frame=str(what)[:120],
                suppressed=suppressed,
            )
        await self._send(call_error_frame(unique_id, error))

    async def _send(self, message: str) -> None:
        await self._connection.send(message)

    async def send_frame(self, frame: str) -> None:
        """Send a frame as it is (local controller mode: the backend's calls)."""
        await self._connection.send(frame)

    @property
    def call_lock(self) -> asyncio.Lock:
        """Held while a call to the charge point is outstanding (one at a time)."""
        lock: asyncio.Lock = self._call_lock
        return lock

    async def close(self, reason: str) -> None:
        """Close the connection (a newer one of the same identity replaces it)."""
        await self._connection.close(1000, reason)

    # --- handlers (answer at once; work that needs calls goes to the station's tasks) -------

    @on(Action.boot_notification)
    def on_boot_notification(
        self, charge_point_vendor: str, charge_point_model: str, **kwargs: Any
    ) -> Any:
        self.station.on_boot(charge_point_vendor, charge_point_model, kwargs)
        return call_result.BootNotification(
            current_time=iso(self.station.now()),
            interval=self.station.heartbeat_s,
            status=RegistrationStatus.accepted,
        )

    @after(Action.boot_notification)
    def after_boot_notification(self, **_: Any) -> None:
        self.station.after_boot(self)

    @on(Action.heartbeat)
    def on_heartbeat(self, **_: Any) -> Any:
        return call_result.Heartbeat(current_time=iso(self.station.now()))

    @on(Action.status_notification)
    def on_status_notification(
        self, connector_id: int, error_code: str, status: str, **kwargs: Any
    ) -> Any:
        self.station.on_status(connector_id, status, error_code, kwargs)
        return call_result.StatusNotification()

    @on(Action.meter_values)
    def on_meter_values(self, connector_id: int, meter_value: list[Any], **_: Any) -> Any:
        self.station.on_meter_values(connector_id, meter_value)
        return call_result.MeterValues()

    @on(Action.start_transaction)
    def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **_: Any
    ) -> Any:
        transaction_id = self.station.on_start_transaction(connector_id, id_tag, meter_start)
        return call_result.StartTransaction(
            transaction_id=transaction_id,
            id_tag_info={"status": self.station.authorize(id_tag)},
        )

    @on(Action.stop_transaction)
    def on_stop_transaction(
        self, meter_stop: int, timestamp: str, transaction_id: int, **kwargs: Any
    ) -> Any:
        self.station.on_stop_transaction(transaction_id, meter_stop)
        id_tag = kwargs.get("id_tag")
        if isinstance(id_tag, str):
            return call_result.StopTransaction(
                id_tag_info={"status": self.station.authorize(id_tag)}
            )
        return call_result.StopTransaction()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str, **_: Any) -> Any:
        return call_result.Authorize(id_tag_info={"status": self.station.authorize(id_tag)})

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **_: Any) -> Any:
        log.info("ocpp_data_transfer", device=self.id, reason="unknown vendor", vendor=vendor_id)
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status_notification(self, status: str, **_: Any) -> Any:
        log.info("ocpp_diagnostics_status", device=self.id, reason=status)
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    def on_firmware_status_notification(self, status: str, **_: Any) -> Any:
        log.info("ocpp_firmware_status", device=self.id, reason=status)
        return call_result.FirmwareStatusNotification()


__all__ = [
    "Connection",
    "OcppSession",
    "call_error_frame",
]
