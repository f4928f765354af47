"""The allocation session's empty-site shortcut (round 8, merged in round 15) keeps two
attributes the day jump's state walk must not compare: ``_idle`` (the last empty-site answer, a
memo that only saves allocations it equals) and ``idle_reused`` (a count for the tests). Both are
declared (``AllocationSession.__fuseguard_memo__`` / ``__fuseguard_counters__``); the count must
never be read by a decision, nor the memo outside the session."""

from __future__ import annotations

import ast
from pathlib import Path

from fuseguard.allocation.session import AllocationSession
from fuseguard.scenario.statewalk import COUNTER_HOOK, MEMO_HOOK, SKIP, capture, first_difference

SRC = Path(__file__).resolve().parents[2] / "src" / "fuseguard"


def _loads(root: Path, name: str) -> list[str]:
    """Where an attribute ``name`` is read (Load context) under ``root``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            loaded = isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)
            if loaded and node.attr == name:  # type: ignore[attr-defined]
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    return found


def test_the_idle_count_and_memo_are_declared() -> None:
    assert getattr(AllocationSession, COUNTER_HOOK) == ("idle_reused",)
    assert getattr(AllocationSession, MEMO_HOOK) == ("_idle",)


def test_the_idle_count_is_never_read_and_the_memo_only_by_the_session() -> None:
    # ``self.idle_reused += 1`` stores (an AugAssign target), it does not load
    for part in ("control", "allocation", "scenario", "sim", "model"):
        assert _loads(SRC / part, "idle_reused") == [], part
    reads = [r.split(":")[0] for r in _loads(SRC / "allocation", "_idle")]
    assert reads == ["allocation/session.py"]  # `idle = self._idle` in _allocate
    assert _loads(SRC / "control", "_idle") == []


def test_the_walk_skips_both() -> None:
    one, two = AllocationSession(), AllocationSession()
    two.idle_reused = 7
    two._idle = ()  # type: ignore[assignment]  # anything: it is not walked
    a, b = capture([("s", one)], 0.0), capture([("s", two)], 60.0)
    assert first_difference(a, b) is None
    skipped = {path for path, kind, _ in a.entries if kind == SKIP}
    assert {"s._idle", "s.idle_reused"} <= skipped
