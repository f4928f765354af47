"""Local controller mode: fuseguard between a charge point and the operator's backend.

Per charge point session, a :class:`Relay` keeps one upstream connection with the same identity
(``{upstream}/{identity}``, subprotocol ``ocpp1.6``, HTTP Basic with the identity and its
password) and forwards every frame both ways unchanged:

* a CALL of the charge point is answered by the backend (fuseguard also runs its own handler, to
  observe status and meter values, but relays the backend's answer); a frame that fails the
  OCPP schema is answered with fuseguard's CALLERROR and not forwarded;
* a CALL of the backend goes to the charge point (one outstanding call at a time, shared with
  fuseguard's own calls) and the charge point's answer goes back: the backend's profile requests
  are answered truthfully by the charge point itself. After a backend SetChargingProfile or
  ClearChargingProfile fuseguard re-installs its own profiles, so a clear cannot remove its caps.

If the backend is down, the local side keeps working: fuseguard's own answer is sent (local
authorisation policy), and StartTransaction, StopTransaction and MeterValues are queued on disk
(:class:`~fuseguard.devices.ocpp.spool.Spool`) and replayed in order when the backend is back,
after the charge point's last BootNotification. A transaction started while the backend was down
carries fuseguard's local transaction id; the backend's id from the replay replaces it in every
later frame in both directions (the only change fuseguard makes to forwarded frames).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from ocpp.messages import MessageType
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from fuseguard.devices.ocpp.spool import Spool, SpoolEntry
from fuseguard.model.clock import Clock

log = structlog.get_logger(__name__)

#: What must reach the backend even when it is down (billing).
SPOOLED_ACTIONS = frozenset({"StartTransaction", "StopTransaction", "MeterValues"})
#: CALLERRORs of fuseguard's own handler that do not stop forwarding (the backend may know more).
FORWARD_ANYWAY = frozenset({"NotImplemented", "NotSupported"})
PROFILE_ACTIONS = frozenset({"SetChargingProfile", "ClearChargingProfile"})


def frame_parts(raw: str | bytes) -> list[Any] | None:
    """A frame as a JSON list, or None."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, list) and len(data) >= 3 else None


def _map_tx(frame: str, mapping: dict[int, int]) -> str:
    """``frame`` with ``transactionId`` rewritten through ``mapping`` (unchanged otherwise)."""
    data = frame_parts(frame)
    if data is None or data[0] != MessageType.Call or len(data) < 4:
        return frame
    payload = data[3]
    tx = payload.get("transactionId") if isinstance(payload, dict) else None
    if isinstance(tx, int) and tx in mapping:
        payload["transactionId"] = mapping[tx]
        return json.dumps(data, separators=(",", ":"))
    return frame


@dataclass
class RelayMemory:
    """What outlives one session of a charge point: its spool, last boot, transaction ids."""

    spool: Spool
    boot_frame: str | None = None
    tx_up: dict[int, int] = field(default_factory=dict)  # local transaction id -> backend's
    tx_down: dict[int, int] = field(default_factory=dict)


class Relay:
    """One charge point's upstream link (created per session by the server)."""

    def __init__(
        self,
        *,
        identity: str,
        upstream_url: str,
        password: str | None,
        memory: RelayMemory,
        clock: Clock,
        to_charge_point: Callable[[str], Any],
        call_lock: asyncio.Lock,
        on_profiles_changed: Callable[[], None],
        on_transaction: Callable[[int, int], None],
        answer_timeout_s: float = 30.0,
    ) -> None:
        self.identity = identity
        self.url = f"{upstream_url.rstrip('/')}/{identity}"
        self.password = password
        self.memory = memory
        self.spool = memory.spool
        self.clock = clock
        self._to_cp = to_charge_point
        self._call_lock = call_lock
        self._profiles_changed = on_profiles_changed
        self._on_transaction = on_transaction
        self.answer_timeout_s = answer_timeout_s
        self.upstream: ClientConnection | None = None
        self._waiting_up: dict[str, asyncio.Future[str]] = {}
        self._waiting_cp: dict[str, asyncio.Future[str]] = {}
        self._order = asyncio.Lock()  # live frames wait while the spool is replayed
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()

    @property
    def name(self) -> str:
        """For logs."""
        return f"ocpp:{self.identity}->upstream"

    def start(self) -> None:
        """Keep the upstream connection (reconnecting with backoff)."""
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def close(self) -> None:
        """Close the upstream connection (the charge point went away)."""
        for task in [self._task, *self._tasks]:
            if task is not None:
                task.cancel()
        if self.upstream is not None:
            with contextlib.suppress(Exception):
                await self.upstream.close()

    # --- the upstream connection -------------------------------------------------------------

    async def _run(self) -> None:
        backoff_s = 1.0
        while True:
            headers = {}
            if self.password is not None:
                token = base64.b64encode(f"{self.identity}:{self.password}".encode()).decode()
                headers["Authorization"] = f"Basic {token}"
            try:
                async with connect(
                    self.url,
                    subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                    additional_headers=headers,
                    open_timeout=10,
                ) as ws:
                    self.upstream = ws
                    backoff_s = 1.0
                    log.info("ocpp_upstream_connected", device=self.name, reason="connected")
                    await self._serve(ws)
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError) as err:
                log.warning("ocpp_upstream_down", device=self.name, reason=repr(err)[:200])
            finally:
                self.upstream = None
                self.connected.clear()
                for fut in self._waiting_up.values():
                    if not fut.done():
                        fut.set_exception(ConnectionClosed(None, None))
                self._waiting_up.clear()
            await self.clock.sleep(backoff_s)
            backoff_s = min(60.0, backoff_s * 2)

    async def _serve(self, ws: ClientConnection) -> None:
        reader = asyncio.create_task(self._read(ws))
        try:
            async with self._order:
                await self._catch_up()
                self.connected.set()
            await reader
        finally:
            reader.cancel()

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            data = frame_parts(raw)
            if data is None or not isinstance(data[1], str):
                log.warning("ocpp_upstream_frame_ignored", device=self.name, reason="malformed")
                continue
            if data[0] == MessageType.Call:
                self._spawn(self._backend_call(str(raw), data))
            elif data[0] in (MessageType.CallResult, MessageType.CallError):
                fut = self._waiting_up.pop(data[1], None)
                if fut is not None and not fut.done():
                    fut.set_result(str(raw))

    async def _request_up(self, unique_id: str, frame: str) -> str:
        ws = self.upstream
        if ws is None:
            raise ConnectionClosed(None, None)
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting_up[unique_id] = fut
        try:
            await ws.send(frame)
            async with asyncio.timeout(self.answer_timeout_s):
                return await fut
        finally:
            self._waiting_up.pop(unique_id, None)

    async def _catch_up(self) -> None:
        """After (re)connecting: the charge point's BootNotification, then the spool in order."""
        if self.memory.boot_frame is not None:
            data = frame_parts(self.memory.boot_frame)
            if data is not None:
                uid = uuid.uuid4().hex
                data[1] = uid
                await self._request_up(uid, json.dumps(data, separators=(",", ":")))
        for entry in self.spool.entries():
            data = frame_parts(entry.frame)
            if data is None:
                self.spool.pop_first()
                continue
            answer = await self._request_up(str(data[1]), _map_tx(entry.frame, self.memory.tx_up))
            reply = frame_parts(answer)
            if entry.local_tx is not None and reply is not None and reply[0] == 3:
                backend_tx = reply[2].get("transactionId") if isinstance(reply[2], dict) else None
                if isinstance(backend_tx, int):
                    self.memory.tx_up[entry.local_tx] = backend_tx
                    self.memory.tx_down[backend_tx] = entry.local_tx
            self.spool.pop_first()
        if len(self.spool) == 0:
            log.info("ocpp_upstream_caught_up", device=self.name, reason="spool replayed")

    # --- charge point -> backend -------------------------------------------------------------

    async def charge_point_call(self, action: str, raw: str, local_answer: str) -> str:
        """The answer to send the charge point for its CALL ``raw``."""
        local = frame_parts(local_answer)
        if (
            local is not None
            and local[0] == MessageType.CallError
            and local[2] not in FORWARD_ANYWAY
        ):
            return local_answer  # malformed for OCPP 1.6: not forwarded
        if action == "BootNotification":
            self.memory.boot_frame = raw
        data = frame_parts(raw)
        unique_id = str(data[1]) if data is not None else ""
        async with self._order:
            frame = _map_tx(raw, self.memory.tx_up)
            if self.upstream is not None and self.connected.is_set():
                try:
                    answer = await self._request_up(unique_id, frame)
                except (ConnectionClosed, TimeoutError) as err:
                    log.warning("ocpp_upstream_no_answer", device=self.name, reason=repr(err))
                else:
                    self._after_backend_answer(action, raw, answer)
                    return answer
            if action in SPOOLED_ACTIONS:
                self.spool.append(SpoolEntry(frame, _local_tx(action, local)))
        return local_answer

    def _after_backend_answer(self, action: str, raw: str, answer: str) -> None:
        if action != "StartTransaction":
            return
        request, reply = frame_parts(raw), frame_parts(answer)
        if request is None or reply is None or reply[0] != MessageType.CallResult:
            return
        tx = reply[2].get("transactionId") if isinstance(reply[2], dict) else None
        connector = request[3].get("connectorId") if isinstance(request[3], dict) else None
        if isinstance(tx, int) and isinstance(connector, int):
            self._on_transaction(connector, tx)

    # --- backend -> charge point -------------------------------------------------------------

    def charge_point_answer(self, unique_id: str, raw: str) -> bool:
        """A CALLRESULT/CALLERROR of the charge point: True when it answers a backend call."""
        fut = self._waiting_cp.pop(unique_id, None)
        if fut is None:
            return False
        if not fut.done():
            fut.set_result(raw)
        return True

    async def _backend_call(self, raw: str, data: list[Any]) -> None:
        unique_id, action = str(data[1]), data[2]
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        frame = _map_tx(raw, self.memory.tx_down)
        async with self._call_lock:  # one outstanding call to the charge point at a time
            self._waiting_cp[unique_id] = fut
            try:
                await self._to_cp(frame)
                async with asyncio.timeout(self.answer_timeout_s):
                    answer = await fut
            except (TimeoutError, ConnectionClosed):
                return  # the backend times out on its own, as with a silent charge point
            finally:
                self._waiting_cp.pop(unique_id, None)
        if self.upstream is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.upstream.send(answer)
        if action in PROFILE_ACTIONS:
            self._profiles_changed()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _local_tx(action: str, local: list[Any] | None) -> int | None:
    if action != "StartTransaction" or local is None or local[0] != MessageType.CallResult:
        return None
    tx = local[2].get("transactionId") if isinstance(local[2], dict) else None
    return tx if isinstance(tx, int) else None


__all__ = ["SPOOLED_ACTIONS", "Relay", "RelayMemory"]
