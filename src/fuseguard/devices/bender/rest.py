"""The legacy REST text API of a Bender CC612/613 (``/rest/full_state``), parsed by key.

``key:value`` and ``key: value`` lines, both firmware spellings of the RCMB keys (5.22
``rcmb_max_values``/``rcmb_current_values``, 5.33 ``rcmb_max``/``rcmb_values``); never by line
index. Every number passes :func:`fuseguard.model.numbers.finite`; values outside the documented
value sets are :class:`BenderParseError` (garbage), never defaults.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from fuseguard.devices.bender.checks import MAX_PLAUSIBLE_CURRENT_A
from fuseguard.model.numbers import NotFiniteError, finite
from fuseguard.model.phases import ZERO, Phases
from fuseguard.model.status import (
    AuthState,
    ConnState,
    CpState,
    OcppState,
    Type2Proximity,
    Type2State,
    cp_from_type2_state,
)

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
#: at most this much of a device's text goes into an error message (and so into the log)
_SHOWN_CHARS = 40


def _shown(text: str) -> str:
    """``text`` for an error message: its repr, cut at :data:`_SHOWN_CHARS` characters."""
    return repr(text) if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]!r}..."


class BenderParseError(ValueError):
    """The legacy REST text is not ``key:value`` data of a Bender controller."""


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
            msg = f"line {number} is not key:value: {_shown(line)}"
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


def _number(text: str, key: str, *, lo: float = -math.inf, hi: float = math.inf) -> float:
    """``text`` as a finite number within ``[lo, hi]``; :class:`BenderParseError` otherwise."""
    try:
        return finite(float(text.strip()), key, lo=lo, hi=hi)
    except NotFiniteError as err:
        raise BenderParseError(str(err)) from err
    except ValueError as err:
        msg = f"{key} is not a number: {_shown(text)}"
        raise BenderParseError(msg) from err


def _pair(value: str, key: str) -> tuple[float, float] | None:
    """RCMB values (informational): two finite numbers, or None for anything else."""
    parts = value.split(",")
    if len(parts) != 2:
        return None
    try:
        return (_number(parts[0], key), _number(parts[1], key))
    except BenderParseError:
        return None


def _triple(value: str, key: str, *, lo: float = -math.inf, hi: float = math.inf) -> Phases:
    parts = value.split(",")
    if len(parts) != 3:
        msg = f"{key} needs three comma-separated numbers, got {_shown(value)}"
        raise BenderParseError(msg)
    return Phases.of(_number(p, key, lo=lo, hi=hi) for p in parts)


def _int(value: str, key: str, *, lo: float = -math.inf, hi: float = math.inf) -> int:
    """An integer value (``+5``, ``5``, or a float the firmware wrote, truncated) in range."""
    text = value.strip()
    try:
        number: float = int(text.lstrip("+"))
    except ValueError:
        number = _number(text, key)
    try:
        finite(number, key, lo=lo, hi=hi)
    except NotFiniteError as err:
        raise BenderParseError(str(err)) from err
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
            msg = f"value outside the documented value set: {str(err)[: 2 * _SHOWN_CHARS]}"
            raise BenderParseError(msg) from err
        errors_text = data.get("errors", "")
        errors = tuple(
            e.strip() for e in errors_text.split(";") if e.strip() and e.strip() != "no_errors"
        )
        rcmb_max = data.get("rcmb_max", data.get("rcmb_max_values"))
        rcmb_values = data.get("rcmb_values", data.get("rcmb_current_values"))
        free = data.get("free_charging")
        amps = {"lo": 0.0, "hi": MAX_PLAUSIBLE_CURRENT_A}
        sig = _int(data["sig_current"], "sig_current", **amps)
        current = _triple(data["current_a"], "current_a", **amps) if "current_a" in data else ZERO

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
            rcmb_max=None if rcmb_max is None else _pair(rcmb_max, "rcmb_max"),
            rcmb_values=None if rcmb_values is None else _pair(rcmb_values, "rcmb_values"),
            errors=errors,
            voltage_v=_triple(data["voltage_v"], "voltage_v") if data.get("voltage_v") else None,
            cp_model=data.get("cp_model") or None,
            cc_serial_n=data.get("cc_serial_n") or None,
            manuf_serial_n=data.get("manuf_serial_n") or None,
        )


__all__ = ["BenderParseError", "BenderRestState", "parse_full_state", "parse_single_key"]
