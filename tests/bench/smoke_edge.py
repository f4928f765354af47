"""The edge of the edge benchmark's smoke test: ``fuseguard run`` holding a raise 1 s.

The harness settles every charger at its top setpoint before it steps; the edge starts each car
at its minimum and raises it after the controller's raise hold (5 s in production, not a site
setting). That hold only paces the settling, which the smoke test does not judge (the hold itself
is proved by tests/control/test_policy_ramp.py); every measured step is a decrease, written at
once either way. The Benders report each car's current at every read, and the cars draw a
constant 6 A. (Not for the OCPP benchmark: there the edge learns a car's current from
MeterValues every 10 s only, and its start-up is timing-sensitive as it is.)
"""

from __future__ import annotations

import sys

RAISE_AFTER_S = 1.0

#: ``python -c`` code: ``fuseguard <args>`` with the shorter raise hold in every Edge it builds.
EDGE_CODE = f"""
import dataclasses, sys
from fuseguard import edge
real = edge.controller_config_of
edge.controller_config_of = lambda cfg: dataclasses.replace(
    real(cfg), raise_after_s={RAISE_AFTER_S!r}
)
from fuseguard.cli import main
sys.argv[0] = "fuseguard"
main()
"""


def edge_command() -> list[str]:
    """The command line that stands in for ``fuseguard`` (arguments follow)."""
    return [sys.executable, "-c", EDGE_CODE]
