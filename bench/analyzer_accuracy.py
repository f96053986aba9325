"""The analyzer on real failure logs, scored on the development half (the logs its rules were
written against) and on the test half (held out: no rule is written while looking at its misses).

    .venv/bin/python bench/analyzer_accuracy.py [--misses dev] [--round N]

Development half: tests/fixtures/failures (the first fixtures) and tests/fixtures/corpus/dev.
Test half: tests/fixtures/corpus/test. Both are made by really running the failing thing
(scripts/capture_failure.py, scripts/failure_corpus.py). Prints category and phase accuracy per half
and per category, and saves them to bench/results/analyzer_accuracy.json. `--misses dev` lists the
development half's misses; there is deliberately no such option for the test half. `--round N`
scores only the logs of one round of scripts/failure_corpus.py and scripts/bare_trl_corpus.py (their
meta.json says which) and saves to analyzer_accuracy_roundN.json: run at once after a round is
made, before any rule changes, it gives the round's first-sight figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "sdk" / "python")]

from services.analyzer.analyze import analyze  # noqa: E402
from services.analyzer.cases import Scored, case_dirs, names, request_for  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"
HALVES = {"dev": [FIXTURES / "failures", FIXTURES / "corpus" / "dev"], "test": [FIXTURES / "corpus" / "test"]}


def score(half: str, round_: int | None = None) -> list[Scored]:
    out = []
    for case in case_dirs(*HALVES[half]):
        meta = json.loads((case / "meta.json").read_text())
        if round_ is not None and meta.get("round") != round_:
            continue
        got = names(analyze(request_for(case)))
        out.append(Scored(case.name, half, (meta["expected_category"], meta["expected_phase"]), got,
                          meta.get("cause", meta.get("description", ""))))
    return out


def summary(scored: list[Scored]) -> dict:
    by_category = defaultdict(lambda: [0, 0, 0])
    for s in scored:
        row = by_category[s.expected[0]]
        row[0] += 1
        row[1] += s.got[0] == s.expected[0]
        row[2] += s.got[1] == s.expected[1]
    n = len(scored)
    return {"cases": n, "category_right": sum(r[1] for r in by_category.values()),
            "phase_right": sum(r[2] for r in by_category.values()),
            "category_accuracy": round(sum(r[1] for r in by_category.values()) / n, 3) if n else None,
            "phase_accuracy": round(sum(r[2] for r in by_category.values()) / n, 3) if n else None,
            "unknown_given": sum(s.got[0] == "UNKNOWN" for s in scored),
            "by_category": {c: {"cases": r[0], "category_right": r[1], "phase_right": r[2]}
                            for c, r in sorted(by_category.items())}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--misses", choices=["dev"], help="list the development half's misses")
    p.add_argument("--round", type=int, help="only the logs of this round of the corpus scripts")
    args = p.parse_args(argv)
    results = {}
    for half in HALVES:
        scored = score(half, args.round)
        results[half] = summary(scored)
        r = results[half]
        print(f"{half:4}: {r['category_right']}/{r['cases']} categories, {r['phase_right']}/{r['cases']} phases, "
              f"UNKNOWN given {r['unknown_given']} times")
        for category, row in r["by_category"].items():
            print(f"      {category:28} {row['category_right']}/{row['cases']} category, "
                  f"{row['phase_right']}/{row['cases']} phase")
        if args.misses == half:
            for s in scored:
                if s.got != s.expected:
                    print(f"      miss {s.name}: expected {s.expected}, got {s.got}")
    out = REPO / "bench" / "results" / (f"analyzer_accuracy_round{args.round}.json" if args.round
                                        else "analyzer_accuracy.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
