"""Shared bits of the schemathesis runs: case budget, counters, hypothesis settings."""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from hypothesis import HealthCheck, settings
from schemathesis.transport.requests import ManagedCookiesSession

#: Cases per API in one `make test` run; ``bench/soak.py`` runs the suite with 2000.
CASES_PER_API = int(os.environ.get("FUSEGUARD_FAULTS_CASES", "240"))
#: Where the counts go when set (bench/soak.py reads them).
COUNTS_FILE = os.environ.get("FUSEGUARD_FAULTS_COUNTS")


def http_session() -> requests.Session:
    """One HTTP session for a module's cases, as schemathesis' own runner keeps one: its
    connections stay open between cases (without it every case built a session and opened a TCP
    connection that the server accepted and tore down), and the response cookies of a case are
    dropped before the next (``ManagedCookiesSession``), so the cases stay independent."""
    return ManagedCookiesSession()


def examples_per_operation(operations: int) -> int:
    """Per-operation budget: an equal share of the API's; the tallies check the total reached.

    It was twice the share, for operations with a tiny input space that would end early; none
    does (schemathesis' negative cases keep every operation going): each operation ran 1.1-2x
    its ``max_examples`` and the APIs 718, 532 and 532 cases against a budget of 240, at about
    10 ms of CPU a case. With the share they count 476, 292 and 292 (every status class
    still seen; every operation at least 31 cases)."""
    return max(10, math.ceil(CASES_PER_API / operations))


def case_settings(operations: int) -> Any:
    return settings(
        max_examples=examples_per_operation(operations),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


class Tally:
    """Status codes per API, and what reached the server."""

    def __init__(self, api: str) -> None:
        self.api = api
        self.statuses: Counter[int] = Counter()
        self.operations: Counter[str] = Counter()

    def add(self, operation: str, status: int) -> None:
        self.statuses[status] += 1
        self.operations[operation] += 1

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def server_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)

    def record(self) -> None:
        if not COUNTS_FILE:
            return
        path = Path(COUNTS_FILE)
        data = json.loads(path.read_text()) if path.exists() else {}
        data[self.api] = {
            "cases": self.total,
            "server_errors": self.server_errors(),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "operations": dict(self.operations),
        }
        path.write_text(json.dumps(data, indent=2) + "\n")

    def check(self) -> None:
        """At least the budget ran, no 5xx, and the API answered more than errors."""
        self.record()
        assert self.total >= CASES_PER_API, (self.api, self.total, CASES_PER_API)
        assert self.server_errors() == 0, self.statuses
        assert {200, 201} & set(self.statuses), self.statuses


def map_current(body: Any, max_a: int, min_a: int = 6) -> Any:
    """Keep a schema-valid integral ``current`` within one EVSE's range.

    The per-EVSE range cannot be in the OpenAPI (it differs per EVSE), so a schema-valid 52538 A
    is refused with 422 by design (tested in tests/evse_api); schemathesis would count that as a
    rejected valid request. Negative or non-integer currents are left alone (negative cases).
    """
    if isinstance(body, dict):
        current = body.get("current")
        integral = type(current) is int or (type(current) is float and current.is_integer())
        if integral and (0 < current < min_a or current > max_a):
            body["current"] = min_a + int(current) % (max_a - min_a + 1)
    return body
