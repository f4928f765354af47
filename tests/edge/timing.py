"""Real-time pacing of the in-process edge tests."""

from __future__ import annotations

import dataclasses

import pytest

from fuseguard import edge as edge_module
from fuseguard.config import FuseguardConfig
from fuseguard.control.types import ControllerConfig

#: The controller's raise hold (``ControllerConfig.raise_after_s``, 5 s in production, not a site
#: setting): a raise waits this long. Shortened in the end-to-end tests, where it only paced every
#: step up (a start, the return from a fallback) by 5 s of real time; the hold itself is proved by
#: tests/control/test_policy_ramp.py and tests/control/test_controller.py.
RAISE_AFTER_S = 1.0


def shorten_raise_hold(
    monkeypatch: pytest.MonkeyPatch, raise_after_s: float = RAISE_AFTER_S
) -> None:
    """Every :class:`~fuseguard.edge.Edge` built from now on (in this process) holds a raise for
    ``raise_after_s`` instead of 5 s."""
    real = edge_module.controller_config_of

    def controller_config_of(cfg: FuseguardConfig) -> ControllerConfig:
        return dataclasses.replace(real(cfg), raise_after_s=raise_after_s)

    monkeypatch.setattr(edge_module, "controller_config_of", controller_config_of)
