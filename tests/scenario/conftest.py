"""Fixtures of the scenario tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _errors_only() -> Iterator[None]:
    """Hours of virtual time: leave the debug log out of every scenario test (none of them
    reads the log; one that does, with ``capture_logs`` or ``caplog``, must set its own level)."""
    old = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    yield
    structlog.configure(**old)
