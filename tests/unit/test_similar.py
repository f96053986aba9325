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
    assert [(k.name, k.cause, k.category, k.phase, k.features) for k in made] == [
        (r["name"], r["cause"], r["category"], r["phase"], r["features"]) for r in rows]
    # what the evidence names them by is a short label, not a fixture's account
    assert max(len(r["cause"]) for r in rows) <= 100


SIBLING = "bare-template_reading_absent_key"  # the plain script's run of a cause the trainer's run has too


def without(name: str) -> similar.Index:
    return similar.Index([k for k in similar.index().known if k.name != name])


def test_a_failure_is_recognised_by_another_run_of_its_cause_and_not_at_all_without_the_cause():
    index = similar.index()
    [known] = [k for k in index.known if k.name == SIBLING]
    match = without(SIBLING).nearest(known.features)
    assert match is not None and match.nearest.name == "cpu-template_reading_absent_key"
    assert (match.category, match.similarity > 0.9) == ("CHAT_TEMPLATE_INCOMPATIBLE", True)
    # with every run of its cause left out (as the cross-validation does), the nearest is another cause
    other = similar.Index([k for k in index.known if k.cause != known.cause]).nearest(known.features)
    assert other is not None and other.nearest.cause != known.cause and other.similarity < match.similarity


def test_where_no_rule_decides_the_closest_known_failure_does_and_says_so(monkeypatch):
    case = REPO / "tests" / "fixtures" / "corpus" / "dev" / SIBLING
    meta = json.loads((case / "meta.json").read_text())
    monkeypatch.setattr(rules, "RULES", [])  # as for a run no rule knows
    unknown_run = without(SIBLING)  # and a run not among the known ones
    monkeypatch.setattr(similar, "index", lambda: unknown_run)
    analysis = analyze(request_for(case))
    assert names(analysis) == (meta["expected_category"], meta["expected_phase"])
    assert any(f"closest known failure: {meta['cause']} (similarity 0.9" in e for e in analysis.evidence), \
        analysis.evidence
    assert 0 < analysis.confidence <= 0.6


def test_a_run_that_raised_nothing_or_is_like_no_known_failure_stays_unknown(monkeypatch):
    monkeypatch.setattr(rules, "RULES", [])
    # words no known failure has; then the last lines of a run that trained and ended with no traceback
    # (a run that raised nothing is the signal's, the watchdog's or the metrics' to tell)
    quiet = "".join(f"{{'loss': {2.0 - i / 10}, 'grad_norm': 1.5, 'learning_rate': 0.0002, 'epoch': {i}}}\n"
                    for i in range(8))
    for log in ("quuxian frobnication halted\n", quiet):
        analysis = analyze(analyzer_pb2.AnalyzeFailureRequest(log=log, exit_code=1))
        assert analysis.category == analyzer_pb2.FAILURE_CATEGORY_UNKNOWN, log
        assert not any("closest known failure" in e for e in analysis.evidence)
