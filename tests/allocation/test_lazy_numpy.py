"""An edge of a small site never loads NumPy (about 12 MB of its memory): the allocator's NumPy
path and the horizon planner's solver import it when first used (``allocation/engine.py``,
``allocation/horizon.py``)."""

from __future__ import annotations

import subprocess
import sys

_PROGRAM = """
import sys
import fuseguard.cli, fuseguard.edge, fuseguard.control.planner
from fuseguard.allocation import allocate
from fuseguard.allocation.engine import SMALL_SITE_PLUGS
from fuseguard.allocation.types import Circuit, Plug, Snapshot
from fuseguard.model.phases import ALL_PHASES, Phases

def site(n):
    main = Circuit("main", None, Phases(63.0, 63.0, 63.0))
    plugs = tuple(Plug(f"p{i}", "main", ALL_PHASES, 16.0) for i in range(n))
    return Snapshot((main,), plugs)

small = allocate(site(SMALL_SITE_PLUGS))
print("numpy" in sys.modules)
large = allocate(site(SMALL_SITE_PLUGS + 1))
print("numpy" in sys.modules)
print(sum(small.setpoints.values()) > 0, len(large.setpoints))
"""


def test_a_small_site_never_loads_numpy_a_large_one_does() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out == ["False", "True", "True", "41"]
