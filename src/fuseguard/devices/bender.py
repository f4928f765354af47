"""Driver for the Bender CC612/CC613 charge controller (Mennekes AMTRON Professional, Webasto
Live, Garo GLB, ... : devices.md section 4).

Control path: Modbus TCP (pymodbus), register 1000 = HEMS current limit (0 pauses, 6..max A),
131/132 = the charger's own fallback (safe current after a communication timeout). State and
measurements come from the Modbus registers; the legacy REST text API (``/rest/full_state``,
optional, ``use_rest``) adds what Modbus lacks: authorisation state, error names, cable rating,
the full firmware version.

The REST text is parsed by key, never by line index: ``key:value`` and ``key: value`` lines, both
firmware spellings of the RCMB keys (5.22 ``rcmb_max_values``/``rcmb_current_values``, 5.33
``rcmb_max``/``rcmb_values``).

Errors (:mod:`fuseguard.control.ports`): refused/reset -> ``DeviceConnectionError``; no answer in
``request_timeout_s`` -> ``DeviceTimeoutError``; 401/403 -> ``DeviceAuthError``; an error status,
a Modbus exception or anything that is not valid data (garbage) -> ``DeviceResponseError`` whose
message names the device and the reason. Connection errors are retried with exponential backoff
(tenacity, ``retry_attempts``/``retry_backoff_s``); garbage is not.

Read cadence: every :meth:`BenderCharger.read` reads the Modbus state (the live values: CP and
OCPP state, errors, phase currents, power, signalled current, limit). The REST ``full_state``
(authorisation, error names, cable rating, firmware) is fetched again only when it is older than
``rest_interval_s`` (default 10 s, on the injected clock), or when the Modbus state that REST
describes changed since the last fetch (CP state, OCPP state, an offered current appearing or
disappearing, i.e. an authorisation, or the error bits), or on every read when the Modbus meter
registers are unavailable (then REST carries the live currents). ``rest_interval_s=0`` fetches
REST on every read.

Modbus reads are one request per documented contiguous range: 104-112 (status, errors), 122 (CP
state), 200-227 (meter), 705-719 (session), 1000 (limit). 104-112 and 122 are not merged: 113-119
are not documented (devices.md 4.3) and a device may answer them with ILLEGAL DATA ADDRESS (the
virtual device does).

For connector 2 of a twin controller use ``modbus_port=503`` (base + 1) and ``use_rest=False``:
the legacy REST API only describes connector 1.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypeVar

import aiohttp
import structlog
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from fuseguard.control.ports import (
    DeviceAuthError,
    DeviceConnectionError,
    DeviceError,
    DeviceResponseError,
    DeviceTimeoutError,
)
from fuseguard.model.clock import Clock, RealClock
from fuseguard.model.phases import ZERO, Phases
from fuseguard.model.samples import ChargerSample
from fuseguard.model.status import (
    AuthState,
    ConnState,
    CpState,
    OcppState,
    Type2Proximity,
    Type2State,
    cp_from_register_122,
    cp_from_type2_state,
)
from fuseguard.wire.bender import ERROR_BITS, READ_METER, READ_SESSION
from fuseguard.wire.bender import BenderRegister as Reg
from fuseguard.wire.modbus import RegisterBlock, RegisterDecodeError

log = structlog.get_logger(__name__)

T = TypeVar("T")


#: Plausibility bound: a value above this in an ampere register is garbage, not a measurement.
MAX_PLAUSIBLE_CURRENT_A = 1000.0
MIN_CURRENT_A = 6
#: A phase carrying more than this counts as "in use".
PHASE_IN_USE_A = 1.0

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


class BenderParseError(ValueError):
    """The legacy REST text is not ``key:value`` data of a Bender controller."""


# --- legacy REST text ---------------------------------------------------------------------------


def parse_full_state(text: str) -> dict[str, str]:
    """Split ``/rest/full_state`` text into ``{key: value}``, by key and never by line index.

    Accepts ``key:value`` and ``key: value`` (surrounding whitespace stripped), ``\\n`` or
    ``\\r\\n`` line ends, empty values and blank lines. The value is everything after the first
    colon (``display_text`` may contain colons). Raises :class:`BenderParseError` when a
    non-blank line is not a ``key:value`` pair with a lower-case key, or no pair is found.
    """
    result: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            shown = line if len(line) <= 40 else line[:40] + "..."
            msg = f"line {number} is not key:value: {shown!r}"
            raise BenderParseError(msg)
        result[key] = value.strip()
    if not result:
        msg = "no key:value lines"
        raise BenderParseError(msg)
    return result


def parse_single_key(key: str, text: str) -> str:
    """The value of ``GET /rest/<key>``: accepts ``value`` or ``key:value``."""
    stripped = text.strip()
    prefix, sep, value = stripped.partition(":")
    if sep and prefix.strip() == key:
        return value.strip()
    return stripped


def _pair(value: str) -> tuple[float, float] | None:
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2:
        return None
    try:
        a, b = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    return (a, b)


def _triple(value: str, key: str) -> Phases:
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 3:
        msg = f"{key} needs three comma-separated numbers, got {value!r}"
        raise BenderParseError(msg)
    try:
        phases = Phases.of(float(p) for p in parts)
    except ValueError as err:
        msg = f"{key} is not numeric: {value!r}"
        raise BenderParseError(msg) from err
    if not phases.is_finite():
        msg = f"{key} is not finite: {value!r}"
        raise BenderParseError(msg)
    return phases


def _int(value: str, key: str) -> int:
    try:
        return int(value.strip().lstrip("+"))
    except ValueError:
        try:
            number = float(value)
        except ValueError as err:
            msg = f"{key} is not a number: {value!r}"
            raise BenderParseError(msg) from err
        if not math.isfinite(number):
            msg = f"{key} is not finite: {value!r}"
            raise BenderParseError(msg) from None
        return int(number)


@dataclass(frozen=True, slots=True, kw_only=True)
class BenderRestState:
    """``/rest/full_state`` in domain terms (either firmware)."""

    conn_state: ConnState
    auth_state: AuthState
    ocpp_state: OcppState
    cp_state: CpState
    sig_current_a: int
    current_a: Phases
    power_w: int
    auth_uid: str = ""
    charging_duration_s: int = 0
    meter_wh: int | None = None
    transaction_wh: int | None = None
    type2_proximity: Type2Proximity | None = None
    free_charging: bool | None = None
    slave_state: OcppState | None = None
    energy_man_current_a: int | None = None
    firmware_ver: str | None = None
    max_current_a: int | None = None
    rcmb_triggered: bool = False
    rcmb_max: tuple[float, float] | None = None
    rcmb_values: tuple[float, float] | None = None
    errors: tuple[str, ...] = ()
    voltage_v: Phases | None = None
    cp_model: str | None = None
    cc_serial_n: str | None = None
    manuf_serial_n: str | None = None

    @property
    def cable_rating_a(self) -> int | None:
        """Rating of a detachable cable read from the proximity pin (None: fixed or none)."""
        return None if self.type2_proximity is None else self.type2_proximity.cable_rating_a

    @classmethod
    def from_text(cls, text: str) -> BenderRestState:
        """Parse and validate; raises :class:`BenderParseError` for anything not device data."""
        return cls.from_mapping(parse_full_state(text))

    @classmethod
    def from_mapping(cls, data: Mapping[str, str]) -> BenderRestState:
        """Validate parsed ``{key: value}``; the key set of either firmware is accepted."""
        required = ("conn_state", "auth_state", "ocpp_state", "type2_state", "sig_current")
        missing = [k for k in required if k not in data]
        if missing:
            msg = f"missing keys: {', '.join(missing)}"
            raise BenderParseError(msg)
        try:
            conn = ConnState(data["conn_state"])
            auth = AuthState(data["auth_state"])
            ocpp = OcppState(data["ocpp_state"])
            cp = cp_from_type2_state(Type2State(data["type2_state"]))
            proximity = (
                Type2Proximity(data["type2_proximity"]) if data.get("type2_proximity") else None
            )
            slave = OcppState(data["slave_state"]) if data.get("slave_state") else None
        except ValueError as err:
            msg = f"value outside the documented value set: {err}"
            raise BenderParseError(msg) from err
        errors_text = data.get("errors", "")
        errors = tuple(
            e.strip() for e in errors_text.split(";") if e.strip() and e.strip() != "no_errors"
        )
        rcmb_max = data.get("rcmb_max", data.get("rcmb_max_values"))
        rcmb_values = data.get("rcmb_values", data.get("rcmb_current_values"))
        free = data.get("free_charging")
        sig = _int(data["sig_current"], "sig_current")
        if not 0 <= sig <= MAX_PLAUSIBLE_CURRENT_A:
            msg = f"sig_current {sig} A is implausible"
            raise BenderParseError(msg)
        current = _triple(data["current_a"], "current_a") if "current_a" in data else ZERO
        if current.max > MAX_PLAUSIBLE_CURRENT_A or current.min < 0:
            msg = f"current_a {current.as_list()} is implausible"
            raise BenderParseError(msg)

        def opt_int(key: str) -> int | None:
            return _int(data[key], key) if data.get(key) else None

        return cls(
            conn_state=conn,
            auth_state=auth,
            ocpp_state=ocpp,
            cp_state=cp,
            sig_current_a=sig,
            current_a=current,
            power_w=opt_int("power_w") or 0,
            auth_uid=data.get("auth_uid", ""),
            charging_duration_s=opt_int("time_since_charging_start") or 0,
            meter_wh=opt_int("meter_wh"),
            transaction_wh=opt_int("transaction_wh"),
            type2_proximity=proximity,
            free_charging=None if free is None else free == "on",
            slave_state=slave,
            energy_man_current_a=opt_int("energy_man_current"),
            firmware_ver=data.get("firmware_ver") or None,
            max_current_a=opt_int("max_current"),
            rcmb_triggered=data.get("rcmb_state") == "triggered",
            rcmb_max=None if rcmb_max is None else _pair(rcmb_max),
            rcmb_values=None if rcmb_values is None else _pair(rcmb_values),
            errors=errors,
            voltage_v=_triple(data["voltage_v"], "voltage_v") if data.get("voltage_v") else None,
            cp_model=data.get("cp_model") or None,
            cc_serial_n=data.get("cc_serial_n") or None,
            manuf_serial_n=data.get("manuf_serial_n") or None,
        )


# --- Modbus decoding -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BenderModbusState:
    """The registers one :meth:`BenderCharger.read` fetches, decoded."""

    ocpp_state: OcppState
    cp_state: CpState
    errors: tuple[str, ...]
    current_a: Phases | None
    power_w: float | None
    energy_wh: float | None
    signalled_current_a: int
    max_current_a: int
    session_energy_wh: int
    charging_duration_s: int
    limit_a: int

    @classmethod
    def decode(
        cls,
        status: RegisterBlock,
        cp: RegisterBlock,
        meter: RegisterBlock,
        session: RegisterBlock,
        limit: RegisterBlock,
    ) -> BenderModbusState:
        """Decode the blocks 104-112, 122, 200-227, 705-719, 1000; raises
        :class:`RegisterDecodeError` for values outside their documented range (garbage)."""
        try:
            ocpp = OcppState.from_ordinal(status.u16(Reg.OCPP_STATE))
            cp_state = cp_from_register_122(cp.u16(Reg.CP_STATE))
        except ValueError as err:
            raise RegisterDecodeError(str(err)) from err
        errors = tuple(
            name
            for (register, bit), name in ERROR_BITS.items()
            if status.u16(register) & (1 << bit)
        )
        amps: list[float] = []
        for i in range(3):
            milli = meter.u32_or_none(Reg.ENERGY_L1 + 12 + 2 * i)
            if milli is None:
                break
            amps.append(milli / 1000.0)
        current = Phases.of(amps) if len(amps) == 3 else None
        if current is not None and current.max > MAX_PLAUSIBLE_CURRENT_A:
            msg = f"phase currents {current.as_list()} A are implausible"
            raise RegisterDecodeError(msg)
        power = meter.u32_or_none(Reg.ENERGY_L1 + 20)
        energy = meter.u32_or_none(Reg.ENERGY_L1 + 18)
        signalled = session.u16(Reg.SIGNALLED_CURRENT)
        max_current = session.u16(Reg.MAX_CURRENT)
        limit_a = limit.u16(Reg.HEMS_CURRENT_LIMIT)
        for name, value in (("signalled current", signalled), ("max current", max_current)):
            if value > MAX_PLAUSIBLE_CURRENT_A:
                msg = f"{name} {value} A is implausible"
                raise RegisterDecodeError(msg)
        return cls(
            ocpp_state=ocpp,
            cp_state=cp_state,
            errors=errors,
            current_a=current,
            power_w=None if power is None else float(power),
            energy_wh=None if energy is None else float(energy),
            signalled_current_a=signalled,
            max_current_a=max_current,
            session_energy_wh=session.u32(Reg.SESSION_ENERGY),
            charging_duration_s=session.u32(Reg.CHARGING_DURATION),
            limit_a=limit_a,
        )


# --- the driver ----------------------------------------------------------------------------------


class BenderCharger:
    """One connector of a Bender CC612/613 (implements ``Charger`` and ``SupportsSafeCurrent``).

    ``start()`` connects, reads the firmware and programs the charger-side fallback (registers
    131/132: ``safe_current_a`` after ``safe_timeout_s`` without a write to 1000; pass
    ``safe_current_a=None`` to leave it alone). ``set_current_limit`` writes register 1000 only
    when the value changes, or when the last write is older than ``refresh_interval_s`` (default
    a third of ``safe_timeout_s``) so that the charger's watchdog does not fire while fuseguard
    is alive; ``keepalive()`` does only the refresh. Both use the injected ``clock``.
    """

    def __init__(
        self,
        host: str,
        rest_port: int = 80,
        modbus_port: int = 502,
        unit_id: int = 255,
        *,
        session: aiohttp.ClientSession | None = None,
        request_timeout_s: float = 5.0,
        use_rest: bool = True,
        rest_credentials: tuple[str, str] | None = None,
        rest_auth: str = "headers",
        safe_current_a: int | None = 6,
        safe_timeout_s: int = 60,
        refresh_interval_s: float | None = None,
        retry_attempts: int = 3,
        retry_backoff_s: float = 0.2,
        rest_interval_s: float = 10.0,
        clock: Clock | None = None,
        name: str | None = None,
    ) -> None:
        self.host = host
        self.rest_port = rest_port
        self.modbus_port = modbus_port
        self.unit_id = unit_id
        self.request_timeout_s = request_timeout_s
        self.use_rest = use_rest
        self.rest_credentials = rest_credentials
        self.rest_auth = rest_auth
        self.safe_current_a = safe_current_a
        self.safe_timeout_s = safe_timeout_s
        self.refresh_interval_s = (
            refresh_interval_s if refresh_interval_s is not None else max(1.0, safe_timeout_s / 3)
        )
        self.retry_attempts = max(1, retry_attempts)
        self.retry_backoff_s = retry_backoff_s
        self.rest_interval_s = rest_interval_s
        self.name = name or f"bender@{host}:{modbus_port}"
        self.firmware: str | None = None
        self.last_error: str | None = None
        self._clock: Clock = clock or RealClock()
        self._session = session
        self._own_session = False
        self._client: AsyncModbusTcpClient | None = None
        self._lock = asyncio.Lock()
        self._written_limit_a: int | None = None
        self._written_at: float = 0.0
        self._rest: BenderRestState | None = None
        self._rest_at: float = 0.0
        self._rest_key: tuple[object, ...] | None = None
        # session block (705-719) and HEMS limit read-back (1000): informational, read at the
        # REST cadence, at once after a write of 1000 and whenever the state registers change
        self._slow: tuple[RegisterBlock, RegisterBlock] | None = None
        self._slow_at: float = 0.0
        self._slow_key: tuple[tuple[int, ...], tuple[int, ...]] | None = None

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
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None
            self._own_session = False

    # --- Charger protocol --------------------------------------------------------------------

    async def read(self) -> ChargerSample:
        """Read state and measurements (Modbus, plus REST when ``use_rest`` at its cadence)."""
        rest: BenderRestState | None = None
        fetched = False
        if self.use_rest and self._rest_due():
            rest = await self._fetch_rest()
            fetched = True
        mb = await self.read_modbus_state()
        if self.use_rest and not fetched:
            if self._rest_stale_for(mb):
                rest = await self._fetch_rest()
            else:
                rest = self._rest
        if self.use_rest:
            self._rest_key = self._rest_key_of(mb)
        current = mb.current_a
        if current is None:
            current = rest.current_a if rest is not None else ZERO
        power = mb.power_w
        if power is None:
            power = float(rest.power_w) if rest is not None else current.total * 230.0
        errors = list(mb.errors)
        if rest is not None:
            errors += [e for e in rest.errors if e not in errors]
        if rest is not None:
            authorized = rest.auth_state is AuthState.AUTHORIZED_FOR_CHARGING
        else:
            authorized = not (
                mb.cp_state.vehicle_connected
                and mb.ocpp_state is OcppState.PREPARING
                and mb.signalled_current_a == 0
            )
        in_use = sum(1 for amps in current if amps > PHASE_IN_USE_A)
        sample = ChargerSample(
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
        self.last_error = None
        return sample

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
        now = self._clock.monotonic()
        if value == self._written_limit_a and now - self._written_at < self.refresh_interval_s:
            return
        await self._write_registers(Reg.HEMS_CURRENT_LIMIT, [value])
        self._written_limit_a = value
        self._written_at = self._clock.monotonic()
        self._slow = None  # the offered current and the read-back change with it
        log.info("current limit written", device=self.name, limit_a=value, reason="changed")

    async def keepalive(self) -> bool:
        """Re-write the last limit if due (watchdog refresh); True when it wrote."""
        if self._written_limit_a is None:
            return False
        if self._clock.monotonic() - self._written_at < self.refresh_interval_s:
            return False
        await self._write_registers(Reg.HEMS_CURRENT_LIMIT, [self._written_limit_a])
        self._written_at = self._clock.monotonic()
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
        self._written_at = self._clock.monotonic()
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
        return self._clock.monotonic() - self._rest_at >= self.rest_interval_s

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
        self._rest_at = self._clock.monotonic()
        return rest

    async def read_rest_state(self) -> BenderRestState:
        """``GET /rest/full_state``, parsed and validated."""
        text = await self.request("/rest/full_state")
        try:
            return BenderRestState.from_text(text)
        except BenderParseError as err:
            raise self._garbage(f"REST full_state: {err}") from err

    async def read_rest_key(self, key: str) -> str:
        """``GET /rest/<key>``: one value."""
        return parse_single_key(key, await self.request(f"/rest/{key}"))

    async def read_modbus_state(self) -> BenderModbusState:
        """Read and decode the state registers.

        State (104-112, 122) and meter (200-227) are read every time; the session block and
        the limit read-back only when they can have changed (see ``_slow``), which saves two of
        five Modbus transactions per poll.
        """
        status = await self._read_registers(Reg.OCPP_STATE, 9)
        cp = await self._read_registers(Reg.CP_STATE, 1)
        meter = await self._read_registers(*READ_METER)
        key = (tuple(status.registers), tuple(cp.registers))
        now = self._clock.monotonic()
        if (
            self._slow is None
            or key != self._slow_key
            or self.rest_interval_s <= 0
            or now - self._slow_at >= self.rest_interval_s
        ):
            self._slow = (
                await self._read_registers(*READ_SESSION),
                await self._read_registers(Reg.HEMS_CURRENT_LIMIT, 1),
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

        async def once() -> str:
            session = self._http_session()
            url = f"http://{self.host}:{self.rest_port}{path}"
            try:
                async with asyncio.timeout(self.request_timeout_s):
                    async with session.get(url, headers=self._rest_headers()) as response:
                        body = await response.read()
                        status = response.status
            except TimeoutError as err:
                msg = f"{self.name}: no REST answer within {self.request_timeout_s} s"
                raise DeviceTimeoutError(msg) from err
            except (aiohttp.ClientConnectionError, OSError) as err:
                msg = f"{self.name}: REST connection failed: {err}"
                raise DeviceConnectionError(msg) from err
            except aiohttp.ClientError as err:
                msg = f"{self.name}: REST request failed: {err}"
                raise DeviceResponseError(msg) from err
            if status in (401, 403):
                msg = f"{self.name}: REST refused our credentials (HTTP {status})"
                raise DeviceAuthError(msg)
            if status >= 400:
                msg = f"{self.name}: REST {path} answered HTTP {status}"
                raise DeviceResponseError(msg)
            try:
                return body.decode("utf-8")
            except UnicodeDecodeError as err:
                raise self._garbage(f"REST {path} is not UTF-8 text") from err

        return await self._with_retries(f"GET {path}", once)

    def _http_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    def _rest_headers(self) -> dict[str, str]:
        if self.rest_credentials is None:
            return {}
        user, password = self.rest_credentials
        if self.rest_auth == "basic":
            return {"Authorization": aiohttp.encode_basic_auth(user, password)}
        return {"Authorization": "Basic Auth", "Username": user, "Password": password}

    async def _read_registers(self, address: int, count: int) -> RegisterBlock:
        async def once() -> RegisterBlock:
            client = await self._connected_client()
            response = await client.read_holding_registers(
                address, count=count, device_id=self.unit_id
            )
            if response.isError():
                msg = f"{self.name}: Modbus read {address}+{count} refused: {response}"
                raise DeviceResponseError(msg)
            registers = list(response.registers)
            if len(registers) != count:
                raise self._garbage(f"read {address}+{count} returned {len(registers)} registers")
            return RegisterBlock(address, registers)

        return await self._with_retries(f"read {address}+{count}", self._modbus_guard(once))

    async def _write_registers(self, address: int, values: list[int]) -> None:
        async def once() -> None:
            client = await self._connected_client()
            response = await client.write_registers(address, values, device_id=self.unit_id)
            if response.isError():
                msg = f"{self.name}: Modbus write {address}={values} refused: {response}"
                raise DeviceResponseError(msg)

        await self._with_retries(f"write {address}", self._modbus_guard(once))

    async def _connected_client(self) -> AsyncModbusTcpClient:
        if self._client is None:
            self._client = AsyncModbusTcpClient(
                self.host,
                port=self.modbus_port,
                timeout=self.request_timeout_s,
                retries=0,
                reconnect_delay=0,
            )
        if not self._client.connected:
            ok = await self._client.connect()
            if not ok:
                self._drop_client()
                msg = f"{self.name}: Modbus connection to port {self.modbus_port} failed"
                raise DeviceConnectionError(msg)
        return self._client

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _modbus_guard(self, call: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
        """One Modbus exchange under ``asyncio.timeout``, pymodbus errors mapped, serialised."""

        async def guarded() -> T:
            async with self._lock:
                try:
                    async with asyncio.timeout(self.request_timeout_s + 0.5):
                        return await call()
                except TimeoutError as err:
                    self._drop_client()
                    msg = f"{self.name}: no Modbus answer within {self.request_timeout_s} s"
                    raise DeviceTimeoutError(msg) from err
                except ModbusIOException as err:
                    self._drop_client()
                    msg = f"{self.name}: no Modbus answer: {err}"
                    raise DeviceTimeoutError(msg) from err
                except (ConnectionException, OSError) as err:
                    self._drop_client()
                    msg = f"{self.name}: Modbus connection failed: {err}"
                    raise DeviceConnectionError(msg) from err
                except ModbusException as err:
                    self._drop_client()
                    raise self._garbage(f"Modbus protocol error: {err}") from err

        return guarded

    async def _with_retries(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, retried with backoff on connection errors.

        Fast path: the first attempt runs directly; the tenacity machinery is built only after it
        failed with a connection error, and its first attempt replays that failure, so attempts
        and waits are exactly those of one ``AsyncRetrying`` around every call.
        """
        try:
            return await call()
        except DeviceConnectionError as err:
            if self.retry_attempts <= 1:
                self._failed(what, err)
                raise
            first: DeviceConnectionError | None = err
        except DeviceError as err:
            self._failed(what, err)
            raise

        async def replay_then_call() -> T:
            nonlocal first
            if first is not None:
                failure, first = first, None
                raise failure
            return await call()

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(DeviceConnectionError),
            stop=stop_after_attempt(self.retry_attempts),
            wait=wait_exponential(multiplier=self.retry_backoff_s, max=5 * self.retry_backoff_s),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await replay_then_call()
        except DeviceError as err:
            self._failed(what, err)
            raise
        msg = "unreachable: tenacity re-raises"  # pragma: no cover
        raise AssertionError(msg)  # pragma: no cover

    def _failed(self, what: str, err: DeviceError) -> None:
        self.last_error = str(err)
        log.warning("bender request failed", device=self.name, op=what, reason=str(err))

    def _garbage(self, reason: str) -> DeviceResponseError:
        message = f"{self.name}: garbage answer: {reason}"
        self.last_error = message
        log.warning("bender answered garbage", device=self.name, reason=reason)
        return DeviceResponseError(message)
