"""Uncontrollable charger: one that does not take the limits it is given.

Owns: whether a plug's charger counts as uncontrollable, and why. The charger says so in its
sample (``ChargerSample.uncontrollable``): an OCPP charge point without the SmartCharging
profile, one that refuses charging profiles, one whose ``Current.Offered`` stays above its limit
(``devices/ocpp/station.py``), or a scenario charge point under ``rejects_profiles``. Such a plug
gets no allocation and keeps the value last written (re-written at the writer's cadence: that is
the retry that finds out when it takes limits again); while a car is connected its maximum
current (spec, charger, cable) is reserved on its phases as load that cannot be shed, so the
other cars make room for whatever it decides to draw. Entry and exit are logged once each.
"""

from __future__ import annotations

import structlog

from fuseguard.control.policies.facts import PlugFacts
from fuseguard.control.types import ChargerSpec
from fuseguard.model.phases import ZERO, Phase, Phases

log = structlog.get_logger(__name__)


class Uncontrollable:
    """One plug's uncontrollable-charger verdict."""

    def __init__(self, spec: ChargerSpec) -> None:
        self._spec = spec
        self._reason: str | None = None
        self._reserved_a = 0

    @property
    def reason(self) -> str | None:
        """Why the charger is uncontrollable after the last update (None: it is not)."""
        return self._reason

    def update(self, f: PlugFacts) -> str | None:
        """Judge this cycle's facts; returns why the charger is uncontrollable (None: it is
        not). A plug without a sample keeps its verdict (nothing new is known)."""
        if f.sample is None:
            return self._reason
        reason = f.sample.uncontrollable
        if reason is not None and self._reason is None:
            log.warning("charger_uncontrollable", charger=self._spec.id, reason=reason)
        elif reason is None and self._reason is not None:
            log.info("charger_controllable", charger=self._spec.id, after=self._reason)
        self._reason = reason
        return reason

    def reserve(self, f: PlugFacts, phases: tuple[Phase, ...], max_a: int) -> Phases:
        """What to reserve for an uncontrollable plug: ``max_a`` on ``phases`` while a car is
        connected, nothing otherwise."""
        connected = f.sample is not None and f.sample.cp_state.vehicle_connected
        self._reserved_a = max_a if connected else 0
        return Phases.on(phases, float(max_a)) if connected else ZERO

    def verdict(self) -> str:
        """The reason shown on the plug while it is uncontrollable."""
        return f"uncontrollable ({self._reason}): {self._reserved_a} A reserved on its phases"


__all__ = ["Uncontrollable"]
