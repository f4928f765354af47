"""Load a benchmark script of ``bench/`` as a module (the benchmarks are scripts, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"


def load_bench(stem: str, sub: str = "") -> ModuleType:
    """``bench/<sub>/<stem>.py`` (``sub`` empty: ``bench/<stem>.py``) as module
    ``fuseguard_bench_<sub>_<stem>``, loaded once per session.

    Its directory goes on ``sys.path`` (at its end) because a benchmark may import its siblings
    (``bench/cloud.py`` imports ``cloud_agents``, ``bench/tools/quiet_study.py``
    ``quiet_report``)."""
    name = f"fuseguard_bench_{sub}_{stem}" if sub else f"fuseguard_bench_{stem}"
    if name in sys.modules:
        return sys.modules[name]
    folder = BENCH_DIR / sub if sub else BENCH_DIR
    if str(folder) not in sys.path:
        # last, not first: ``bench/ocpp.py`` would shadow the ``ocpp`` library for every later
        # import in this process (round 16: a bench module loaded at collection broke the
        # collection of every test importing the OCPP simulator); the siblings a benchmark
        # imports (``cloud_agents``, ``soak_cloud``, ...) have names nothing else has
        sys.path.append(str(folder))
    spec = importlib.util.spec_from_file_location(name, folder / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
