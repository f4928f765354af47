"""The small protocols the control loop needs from devices, and the shallow device error tree.

Drivers in ``fuseguard.devices`` implement these; the controller never sees a wire format.
:class:`GridMeter` and :class:`Charger` are required; everything else is an optional capability,
declared as its own runtime-checkable Protocol and detected with ``isinstance`` (as evcc's
optional charger interfaces are), never with ``getattr``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from fuseguard.model.samples import ChargerSample, MeterSample


class DeviceError(Exception):
    """A device could not be used; the message says which device and why."""


class DeviceConnectionError(DeviceError):
    """Connection refused, reset, or no route."""


class DeviceTimeoutError(DeviceConnectionError):
    """No answer within the timeout."""


class DeviceResponseError(DeviceError):
    """The device answered, but with an error status or something that is not valid data."""


class DeviceAuthError(DeviceResponseError):
    """The device refused our credentials."""


@runtime_checkable
class GridMeter(Protocol):
    """A meter at a measuring point (grid connection or sub-circuit)."""

    async def read(self) -> MeterSample:
        """Read one sample; raise a DeviceError subclass when that is impossible."""


@runtime_checkable
class Charger(Protocol):
    """One charge point connector (evcc-style: state, currents, one current limit)."""

    async def read(self) -> ChargerSample:
        """Read state and measurements; raise a DeviceError subclass when impossible."""

    async def set_current_limit(self, current_a: int) -> None:
        """Offer ``current_a`` A per phase to the vehicle; 0 pauses charging."""


@runtime_checkable
class SupportsLifecycle(Protocol):
    """A driver that needs set-up before its first read and a clean shutdown."""

    async def start(self) -> None:
        """Connect, read identity, program what must be programmed once."""

    async def close(self) -> None:
        """Release connections; never raises."""


@runtime_checkable
class SupportsStartStop(Protocol):
    """A charger whose charging can be stopped and resumed without a current limit."""

    async def enable(self, enabled: bool) -> None:
        """Allow (True) or stop (False) charging."""


@runtime_checkable
class SupportsPhaseSwitching(Protocol):
    """A charger that can switch between one-phase and three-phase charging."""

    async def set_phases(self, phases: int) -> None:
        """Charge on 1 or 3 phases from now on."""


@runtime_checkable
class SupportsWatchdog(Protocol):
    """A charger whose own watchdog falls back (to its safe current) unless its limit is
    written again in time: the writer re-writes an unchanged limit at least this often."""

    @property
    def watchdog_refresh_s(self) -> float:
        """Re-write an unchanged limit at least every this many seconds (inf: no watchdog)."""


@runtime_checkable
class SupportsSafeCurrent(Protocol):
    """Charger-side fallback: drop to ``current_a`` when not written for ``timeout_s``."""

    async def set_safe_current(self, current_a: int, timeout_s: int) -> None:
        """Program the charger's own communication-loss fallback."""
