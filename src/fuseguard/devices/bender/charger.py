"""The Bender CC612/613 driver: one connector, Modbus TCP control, legacy REST for the rest."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self, TypeVar

import aiohttp
import structlog

from fuseguard.control.ports import (
    Charger,
    DeviceConnectionError,
    DeviceError,
    DeviceResponseError,
    SupportsLifecycle,
    SupportsSafeCurrent,
    SupportsWatchdog,
)
from fuseguard.devices.bender.checks import PHASE_IN_USE_A, check_sample
from fuseguard.devices.bender.modbus import BenderModbusLink, BenderModbusState
from fuseguard.devices.bender.rest import BenderParseError, BenderRestState, parse_single_key
from fuseguard.devices.http import DeviceHttpClient, garbage_message
from fuseguard.devices.retry import retry_after
from fuseguard.model.clock import Clock, RealClock
from fuseguard.model.iec import MIN_CHARGE_CURRENT_A
from fuseguard.model.numbers import NotFiniteError
from fuseguard.model.phases import ZERO
from fuseguard.model.samples import ChargerSample
from fuseguard.model.status import AuthState, OcppState
from fuseguard.wire.bender import READ_CP, READ_LIMIT, READ_METER, READ_SESSION, READ_STATUS
from fuseguard.wire.bender import BenderRegister as Reg
from fuseguard.wire.modbus import RegisterBlock, RegisterDecodeError

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Below the IEC 61851 minimum a Bender treats a limit as 0 (pause).
MIN_CURRENT_A = MIN_CHARGE_CURRENT_A


@dataclass(kw_only=True, eq=False)
class BenderCharger(
    DeviceHttpClient, Charger, SupportsLifecycle, SupportsSafeCurrent, SupportsWatchdog
):
    """One connector of a Bender CC612/613 (``Charger``, ``SupportsLifecycle``,
    ``SupportsSafeCurrent``, ``SupportsWatchdog``).

    ``start()`` connects, reads the firmware and programs the charger-side fallback (registers
    131/132: ``safe_current_a`` after ``safe_timeout_s`` without a write to 1000; pass
    ``safe_current_a=None`` to leave it alone). ``set_current_limit`` writes register 1000 only
    when the value changes, or when the last write is older than ``refresh_interval_s`` (default
    a third of ``safe_timeout_s``) so that the charger's watchdog does not fire while fuseguard
    is alive; ``keepalive()`` does only the refresh. Both use the injected ``clock``.
    ``session``, ``request_timeout_s`` and the retry settings are those of
    :class:`~fuseguard.devices.http.DeviceHttpClient`; the Modbus link uses the same timeout and
    retries.
    """

    host: str
    rest_port: int = 80
    modbus_port: int = 502
    unit_id: int = 255
    use_rest: bool = True
    rest_credentials: tuple[str, str] | None = field(default=None, repr=False)
    rest_auth: str = "headers"
    safe_current_a: int | None = 6
    safe_timeout_s: int = 60
    refresh_interval_s: float = 0.0  # 0: a third of safe_timeout_s (at least 1 s)
    rest_interval_s: float = 10.0
    clock: Clock = field(default_factory=RealClock)
    name: str = ""
    firmware: str | None = field(default=None, init=False)
    last_error: str | None = field(default=None, init=False)
    _modbus: BenderModbusLink | None = field(default=None, init=False, repr=False)
    _written_limit_a: int | None = field(default=None, init=False, repr=False)
    _written_at: float = field(default=0.0, init=False, repr=False)
    _rest: BenderRestState | None = field(default=None, init=False, repr=False)
    _rest_at: float = field(default=0.0, init=False, repr=False)
    _rest_key: tuple[object, ...] | None = field(default=None, init=False, repr=False)
    _rest_body: tuple[str, BenderRestState] | None = field(default=None, init=False, repr=False)
    # session block (705-719) and HEMS limit read-back (1000): informational, read at the
    # REST cadence, at once after a write of 1000 and whenever the state registers change
    _slow: tuple[RegisterBlock, RegisterBlock] | None = field(default=None, init=False, repr=False)
    _slow_at: float = field(default=0.0, init=False, repr=False)
    _slow_key: tuple[tuple[int, ...], ...] | None = field(default=None, init=False, repr=False)

    _api = "REST"

    def __post_init__(self) -> None:
        if self.refresh_interval_s <= 0:
            self.refresh_interval_s = max(1.0, self.safe_timeout_s / 3)
        self.retry_attempts = max(1, self.retry_attempts)
        self.name = self.name or f"bender@{self.host}:{self.modbus_port}"

    @property
    def watchdog_refresh_s(self) -> float:
        """``SupportsWatchdog``: how often the limit must be written while fuseguard is alive
        (the refresh interval; no watchdog when ``safe_timeout_s`` is 0). A safe-current timeout
        below three of the controller's rewrite intervals (20 s) would otherwise let the charger
        fall back between two rewrites: to its safe current, above a paused setpoint."""
        return self.refresh_interval_s if self.safe_timeout_s > 0 else math.inf

    @property
    def device(self) -> str:
        """The name in log events and error messages (``bender@host:modbus_port``)."""
        return self.name

    def _base_url(self) -> str:
        return f"http://{self.host}:{self.rest_port}"

    def _headers(self) -> dict[str, str]:
        if self.rest_credentials is None:
            return {}
        user, password = self.rest_credentials
        if self.rest_auth == "basic":
            return {"Authorization": aiohttp.encode_basic_auth(user, password)}
        return {"Authorization": "Basic Auth", "Username": user, "Password": password}

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect, read the firmware, program the safe current (if configured)."""
        if self.firmware is None:
            block = await self._read_registers(Reg.FIRMWARE, 2)
            try:
                self.firmware = block.ascii(Reg.FIRMWARE, 2) or None
            except RegisterDecodeError as err:
                raise self._garbage(f"firmware register: {err}") from err
        if self.safe_current_a is not None:
            await self.set_safe_current(self.safe_current_a, self.safe_timeout_s)
        log.info(
            "bender charger started",
            device=self.name,
            firmware=self.firmware,
            safe_current_a=self.safe_current_a,
            safe_timeout_s=self.safe_timeout_s,
            reason="start",
        )

    async def close(self) -> None:
        """Close the Modbus connection and a session this driver created."""
        if self._modbus is not None:
            self._modbus.close()
            self._modbus = None
        await super().close()

    # --- Charger protocol --------------------------------------------------------------------

    async def read(self) -> ChargerSample:
        """Read state and measurements (Modbus, plus REST when ``use_rest`` at its cadence).

        Every sample is checked (finite, in range); garbage raises ``DeviceResponseError``.
        """
        rest: BenderRestState | None = None
        fetched = False
        if self.use_rest and self._rest_due():
            rest = await self._fetch_rest()
            fetched = True
        mb = await self.read_modbus_state()
        if self.use_rest and not fetched:
            rest = await self._fetch_rest() if self._rest_stale_for(mb) else self._rest
        if self.use_rest:
            self._rest_key = self._rest_key_of(mb)
        sample = self._sample(mb, rest)
        try:
            check_sample(sample)
        except NotFiniteError as err:
            raise self._garbage(f"implausible sample: {err}") from err
        self.last_error = None
        return sample

    def _sample(self, mb: BenderModbusState, rest: BenderRestState | None) -> ChargerSample:
        """Modbus values first; REST fills what Modbus lacks (or carries no meter for)."""
        current = mb.current_a
        if current is None:
            current = rest.current_a if rest is not None else ZERO
        power = mb.power_w
        if power is None:
            power = float(rest.power_w) if rest is not None else current.total * 230.0
        errors = list(mb.errors)
        if rest is not None:
            errors += [e for e in rest.errors if e not in errors]
            authorized = rest.auth_state is AuthState.AUTHORIZED_FOR_CHARGING
        else:
            authorized = not (
                mb.cp_state.vehicle_connected
                and mb.ocpp_state is OcppState.PREPARING
                and mb.signalled_current_a == 0
            )
        in_use = sum(1 for amps in current if amps > PHASE_IN_USE_A)
        return ChargerSample(
            cp_state=mb.cp_state,
            ocpp_state=mb.ocpp_state,
            current_a=current,
            power_w=power,
            energy_wh=mb.energy_wh,
            session_energy_wh=float(mb.session_energy_wh),
            charging_duration_s=float(mb.charging_duration_s),
            signalled_current_a=float(mb.signalled_current_a),
            limit_a=float(mb.limit_a),
            max_current_a=float(mb.max_current_a),
            cable_rating_a=None if rest is None else rest.cable_rating_a,
            phases_in_use=in_use or None,
            authorized=authorized,
            errors=tuple(errors),
            firmware=(rest.firmware_ver if rest is not None else None) or self.firmware,
        )

    async def set_current_limit(self, current_a: int) -> None:
        """Offer ``current_a`` A (0 pauses; 1..5 are written as 0, as the device treats them).

        Writes register 1000 only when the value changed or the last write is older than
        ``refresh_interval_s``.
        """
        if current_a < 0:
            msg = f"current limit must be >= 0 A, got {current_a}"
            raise ValueError(msg)
        value = 0 if current_a < MIN_CURRENT_A else int(current_a)
        if value != current_a:
            log.debug("limit below 6 A written as 0", device=self.name, requested_a=current_a)
        now = self.clock.monotonic()
        if value == self._written_limit_a and now - self._written_at < self.refresh_interval_s:
            return
        await self._write_registers(Reg.HEMS_CURRENT_LIMIT, [value])
        self._written_limit_a = value
        self._written_at = self.clock.monotonic()
        self._slow = None  # the offered current and the read-back change with it
        # debug: control logs every setpoint change once ("setpoint", with its reason)
        log.debug("current limit written", device=self.name, limit_a=value, reason="changed")

    async def keepalive(self) -> bool:
        """Re-write the last limit if due (watchdog refresh); True when it wrote."""
        if self._written_limit_a is None:
            return False
        if self.clock.monotonic() - self._written_at < self.refresh_interval_s:
            return False
        await self._write_registers(Reg.HEMS_CURRENT_LIMIT, [self._written_limit_a])
        self._written_at = self.clock.monotonic()
        self._slow = None  # a charger that had fallen back offers the limit again
        log.debug("current limit refreshed", device=self.name, limit_a=self._written_limit_a)
        return True

    async def set_safe_current(self, current_a: int, timeout_s: int) -> None:
        """Program the charger's fallback: ``current_a`` (0 or 6..max) after ``timeout_s``
        without a write to register 1000 (0 s disables the watchdog)."""
        if current_a != 0 and current_a < MIN_CURRENT_A:
            msg = f"safe current must be 0 or >= 6 A, got {current_a}"
            raise ValueError(msg)
        if not 0 <= timeout_s <= 0xFFFF:
            msg = f"timeout must be 0..65535 s, got {timeout_s}"
            raise ValueError(msg)
        await self._write_registers(Reg.SAFE_CURRENT, [current_a, timeout_s])
        # Programming the timeout restarts the device's watchdog like a write to 1000 does.
        self._written_at = self.clock.monotonic()
        log.info(
            "safe current programmed",
            device=self.name,
            safe_current_a=current_a,
            timeout_s=timeout_s,
            reason="fallback",
        )

    # --- reads -------------------------------------------------------------------------------

    def _rest_due(self) -> bool:
        """REST must be fetched before the Modbus read: none yet, or older than the interval."""
        if self._rest is None or self.rest_interval_s <= 0:
            return True
        return self.clock.monotonic() - self._rest_at >= self.rest_interval_s

    @staticmethod
    def _rest_key_of(mb: BenderModbusState) -> tuple[object, ...]:
        """The part of the Modbus state whose change makes the cached REST state stale."""
        return (mb.cp_state, mb.ocpp_state, mb.signalled_current_a > 0, mb.errors)

    def _rest_stale_for(self, mb: BenderModbusState) -> bool:
        """The cached REST state no longer describes ``mb`` (or REST carries live values)."""
        if mb.current_a is None or mb.power_w is None:
            return True
        return self._rest_key_of(mb) != self._rest_key

    async def _fetch_rest(self) -> BenderRestState:
        self._rest = None
        rest = await self.read_rest_state()
        self._rest = rest
        self._rest_at = self.clock.monotonic()
        return rest

    async def read_rest_state(self) -> BenderRestState:
        """``GET /rest/full_state``, parsed and validated.

        A body identical to the last good one is that one's state (parsing is a pure function of
        the text, so it is validated all the same): an idle charger's ``full_state`` does not
        change, and its parse was a fifth of a fetch's client CPU over a kept connection."""
        text = await self.request("/rest/full_state")
        last = self._rest_body
        if last is not None and last[0] == text:
            return last[1]
        try:
            state = BenderRestState.from_text(text)
        except BenderParseError as err:
            raise self._garbage(f"REST full_state: {err}") from err
        self._rest_body = (text, state)
        return state

    async def read_rest_key(self, key: str) -> str:
        """``GET /rest/<key>``: one value."""
        return parse_single_key(key, await self.request(f"/rest/{key}"))

    async def read_modbus_state(self) -> BenderModbusState:
        """Read and decode the state registers.

        State (104-112, 122) and meter (200-227) are read every time; the session block and
        the limit read-back only when they can have changed (see ``_slow``), which saves two of
        five Modbus transactions per poll.
        """
        status = await self._read_registers(*READ_STATUS)
        cp = await self._read_registers(*READ_CP)
        meter = await self._read_registers(*READ_METER)
        key = (tuple(status.registers), tuple(cp.registers))
        now = self.clock.monotonic()
        if (
            self._slow is None
            or key != self._slow_key
            or self.rest_interval_s <= 0
            or now - self._slow_at >= self.rest_interval_s
        ):
            self._slow = (
                await self._read_registers(*READ_SESSION),
                await self._read_registers(*READ_LIMIT),
            )
            self._slow_at = now
            self._slow_key = key
        session, limit = self._slow
        try:
            return BenderModbusState.decode(status, cp, meter, session, limit)
        except RegisterDecodeError as err:
            raise self._garbage(f"Modbus registers: {err}") from err

    async def read_safe_current(self) -> tuple[int, int]:
        """Registers 131/132 as programmed on the device: (safe current A, timeout s)."""
        block = await self._read_registers(Reg.SAFE_CURRENT, 2)
        return block.u16(Reg.SAFE_CURRENT), block.u16(Reg.COMM_TIMEOUT)

    # --- transport ---------------------------------------------------------------------------

    async def request(self, path: str) -> str:
        """The one HTTP request of this driver: GET ``path`` on the REST port, as text."""
        try:
            response = await self._request("GET", path)
        except DeviceError as err:
            self.last_error = str(err)
            raise
        try:
            return response.body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise self._garbage(f"REST {path} is not UTF-8 text") from err

    def _link(self) -> BenderModbusLink:
        """The Modbus link, made on first use from the current address and timeout."""
        if self._modbus is None:
            self._modbus = BenderModbusLink(
                device=self.name,
                host=self.host,
                port=self.modbus_port,
                unit_id=self.unit_id,
                timeout_s=self.request_timeout_s,
            )
        return self._modbus

    async def _read_registers(self, address: int, count: int) -> RegisterBlock:
        # the poll's hot path: the lean client's exchange itself (no retry wrapper, no
        # description of the operation) until it fails
        try:
            registers = await self._link().client().read_holding_registers(address, count)
        except DeviceError as err:
            what = f"read {address}+{count}"
            return await self._after_failure(what, err, lambda: self._link().read(address, count))
        return RegisterBlock(address, registers)

    async def _write_registers(self, address: int, values: list[int]) -> None:
        try:
            await self._link().client().write_registers(address, values)
        except DeviceError as err:
            await self._after_failure(
                f"write {address}", err, lambda: self._link().write(address, values)
            )

    async def _after_failure(
        self, what: str, first: DeviceError, call: Callable[[], Awaitable[T]]
    ) -> T:
        """The rest of ``call``'s attempts after ``first`` failed: a connection error is retried
        with backoff (:func:`~fuseguard.devices.retry.retry_after`), anything else is not; the
        final failure is recorded and logged."""
        try:
            if not isinstance(first, DeviceConnectionError):
                raise first
            return await retry_after(
                first, call, attempts=self.retry_attempts, backoff_s=self.retry_backoff_s
            )
        except DeviceError as err:
            self.last_error = str(err)
            log.warning("bender request failed", device=self.name, op=what, reason=str(err))
            raise

    def _garbage(self, reason: str) -> DeviceResponseError:
        message = garbage_message(self.name, reason)
        self.last_error = message
        log.warning("bender answered garbage", device=self.name, reason=reason)
        return DeviceResponseError(message)


__all__ = ["MIN_CURRENT_A", "BenderCharger"]
