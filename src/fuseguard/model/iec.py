"""IEC 61851-1 constants for AC charging (the one place they live).

A vehicle charges only when the PWM duty cycle signals at least 6 A; 0 A (or a signal below 6 A)
pauses it. Type 2 AC charging tops out at 63 A per phase in the standard and at 80 A in practice
for the charge controllers fuseguard drives (CC612/613, OCPP wallboxes).
"""

from __future__ import annotations

from typing import Final

#: Lowest current a vehicle charges at (IEC 61851-1 PWM minimum).
MIN_CHARGE_CURRENT_A: Final = 6
#: Highest per-phase current a configured charge point may offer.
MAX_CHARGE_CURRENT_A: Final = 80
#: Seconds a vehicle may take to follow a changed PWM signal (IEC 61851-1 allows up to 5 s).
MAX_RESPONSE_DELAY_S: Final = 5.0


def effective_offer_a(offered_a: float) -> float:
    """What a vehicle can act on: the offer itself, or 0 when it is below the 6 A minimum."""
    return offered_a if offered_a >= MIN_CHARGE_CURRENT_A else 0.0


__all__ = [
    "MAX_CHARGE_CURRENT_A",
    "MAX_RESPONSE_DELAY_S",
    "MIN_CHARGE_CURRENT_A",
    "effective_offer_a",
]
