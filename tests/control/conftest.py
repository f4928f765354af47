"""Fixtures shared by the control tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from ..logkit import errors_only_logging


@pytest.fixture
def errors_only_logs() -> Iterator[None]:
    """Errors only, plain (tests/logkit.py), for a module whose tests read no rendered log
    output; structlog's defaults again afterwards."""
    errors_only_logging()
    yield
    structlog.reset_defaults()
