"""Per-plug policies: small classes, each with its own state and one explicit ``update``.

* :mod:`.stuck` — a contactor that draws clearly above its setpoint (``StuckContactor``);
* :mod:`.idle` — a car that takes no current although offered: full or not ready (``IdleCar``);
* :mod:`.demand` — a car that draws clearly less than offered frees the rest (``DemandCap``);
* :mod:`.phases` — the grid phases a car really loads (``PhaseLearning``);
* :mod:`.ramp` — increases held for ``raise_after_s`` and ramped (``Ramp``);
* :mod:`.handover` — break before make: increases wait while other cars come down, a car that
  does not come down is counted at its real draw (``BreakBeforeMake``).

Every policy reads the same per-cycle :class:`~.facts.PlugFacts`; queries never change state,
and the order in which the policies run lives in one place (:mod:`fuseguard.control.plug`).
"""
