"""A script in ``bench/`` runs with ``bench/`` first on ``sys.path``, where ``bench/ocpp.py``
shadows the ``ocpp`` library: a simulation must not import it. Round 9's simulated OCPP charger
took the driver's trigger timings from ``devices/ocpp`` (which imports the library), and
``python bench/quality.py`` failed on every scenario ("'ocpp' is not a package"); the timings
now live in ``wire/ocpp_triggers.py``."""

from __future__ import annotations

import subprocess
import sys

from ..benchkit import BENCH_DIR


def test_a_simulation_imports_no_ocpp_library_so_bench_scripts_can_run_it() -> None:
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(BENCH_DIR)!r})\n"
        "import fuseguard.scenario.runner\n"
        "import fuseguard.scenario.ocpp_adapter\n"
        "assert 'ocpp' not in sys.modules, 'the ocpp library was imported'\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
