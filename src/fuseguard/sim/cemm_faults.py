"""What the virtual CEMM can be told to do wrong (its ``/sim/fault`` vocabulary, no I/O).

The values ``offline``, ``slow``, ``garbage`` and ``frozen`` are spelt as
:class:`fuseguard.model.faults.DeviceFault` spells them, so a scenario's device fault names the
same CEMM fault; ``http_500`` is the CEMM's own (an error status with a JSON body).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Fault(StrEnum):
    """Injectable faults of the virtual device."""

    OFFLINE = "offline"  # connection refused (listener closed), no discovery reply
    SLOW = "slow"  # every open-api answer delayed by delay_s (model clock)
    HTTP_500 = "http_500"  # 500 with a JSON error body
    GARBAGE = "garbage"  # 200 with a body that is not usable data (see GarbageVariant)
    FROZEN = "frozen"  # published telegram stops: timestamps and values stop moving


class GarbageVariant(StrEnum):
    """What the ``garbage`` fault serves."""

    TRUNCATED = "truncated"  # application/json, cut-off JSON
    HTML = "html"  # text/html error page
    NAN = "nan"  # application/json with NaN values (not valid JSON)
    SHAPE = "shape"  # valid JSON of the wrong shape


@dataclass(frozen=True, slots=True)
class FaultState:
    """The active fault (``kind`` None = healthy)."""

    kind: Fault | None = None
    delay_s: float = 0.0
    variant: GarbageVariant = GarbageVariant.TRUNCATED
    until_monotonic_s: float | None = None


__all__ = ["Fault", "FaultState", "GarbageVariant"]
