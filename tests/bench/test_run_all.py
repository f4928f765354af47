"""``make bench`` (``bench/run_all.py``) joins the benchmarks' tables into ``bench/results/`` and
never writes ``docs/benchmarks.md``: that page is curated, and until round 16 a whole run
replaced 1 528 lines of its before/after analysis with the bare fragments."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..benchkit import BENCH_DIR, load_bench


def test_assemble_joins_the_fragments_in_results_and_leaves_the_docs_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_all = load_bench("run_all")
    assert run_all.DOC == BENCH_DIR / "results" / "benchmarks.md"
    results, notes = tmp_path / "results", tmp_path / "notes"
    results.mkdir()
    notes.mkdir()
    (results / "quality.md").write_text("### Control quality\n\n| a |\n", encoding="utf-8")
    (notes / "quality.md").write_text("Why the table looks so.\n", encoding="utf-8")
    docs = BENCH_DIR.parent / "docs" / "benchmarks.md"
    before = docs.read_bytes()
    monkeypatch.setattr(run_all, "RESULTS", results)
    monkeypatch.setattr(run_all, "NOTES", notes)
    monkeypatch.setattr(run_all, "DOC", results / "benchmarks.md")
    monkeypatch.setattr(run_all, "ROOT", tmp_path)
    run_all.assemble()
    joined = (results / "benchmarks.md").read_text(encoding="utf-8")
    assert "### Control quality" in joined
    assert joined.index("| a |") < joined.index("Why the table looks so.")
    assert "Not run yet: `python bench/edge.py`" in joined
    assert docs.read_bytes() == before
