"""The closest known failure, which decides only where no rule did (services/analyzer/similar.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ftlab.v1 import analyzer_pb2
from services.analyzer import rules, similar
from services.analyzer.analyze import analyze
from services.analyzer.cases import case_dirs, names, request_for

REPO = Path(__file__).parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import known_failures as maker  # noqa: E402

TEST_HALF = REPO / "tests" / "fixtures" / "corpus" / "test"
DATA = json.loads(similar.DATA.read_text())


def test_the_known_failures_are_the_development_half_and_nothing_of_the_test_half():
    held_out = {case.name for case in case_dirs(TEST_HALF)}
    assert held_out, "the test half is where the benchmark expects it"
    rows = DATA["known"]
    assert len(rows) >= 200
    assert not {row["name"] for row in rows} & held_out
    # the file is what the script makes from today's development half: run it again when that grows
    made = maker.known()
    assert [(k.name, k.category, k.phase, k.features) for k in made] == [
        (r["name"], r["category"], r["phase"], r["features"]) for r in rows]


def test_a_known_failure_is_never_matched_with_its_own_cause_when_that_is_left_out(monkeypatch):
    index = similar.index()
    monkeypatch.setattr(similar, "K", 1)
    for known in index.known[::5]:
        if not known.features:  # a run that raised nothing and printed nothing to compare
            continue
        match = index.nearest(known.features, exclude=frozenset({known.cause}))
        assert match is None or match.nearest.cause != known.cause
        # with its cause in, a known failure is its own nearest
        assert index.nearest(known.features).similarity > 0.999


def test_where_no_rule_decides_the_closest_known_failure_does_and_says_so(monkeypatch):
    case = REPO / "tests" / "fixtures" / "corpus" / "dev" / "bare-batch_size_zero"
    meta = json.loads((case / "meta.json").read_text())
    monkeypatch.setattr(rules, "RULES", [])  # as for a run no rule knows
    analysis = analyze(request_for(case))
    assert names(analysis)[0] == meta["expected_category"]
    assert any(f"closest known failure: {meta['cause']}" in e for e in analysis.evidence), analysis.evidence
    assert analysis.confidence <= 0.6


def test_a_log_that_is_like_no_known_failure_stays_unknown(monkeypatch):
    monkeypatch.setattr(rules, "RULES", [])
    # words no known failure has, and no traceback: nothing to compare
    analysis = analyze(analyzer_pb2.AnalyzeFailureRequest(log="quuxian frobnication halted\n", exit_code=1))
    assert analysis.category == analyzer_pb2.FAILURE_CATEGORY_UNKNOWN
    assert not any("closest known failure" in e for e in analysis.evidence)
