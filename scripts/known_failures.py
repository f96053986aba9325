"""The known failures the analyzer compares an undecided run with (services/analyzer/similar.py).

    .venv/bin/python scripts/known_failures.py                   # rewrites services/analyzer/data/known_failures.json
    .venv/bin/python scripts/known_failures.py --cross-validate  # scores it on the development half

Only the development half goes in (tests/fixtures/failures and tests/fixtures/corpus/dev); the test
half is never read here. `--cross-validate` predicts every development log from the others, leaving
out all logs of its own cause (a cause seen once in the corpus is as new as one never seen), and
prints how many it answers and how many of those are right at each threshold: the threshold in
similar.py was chosen from that table. Run it again when the development half grows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "sdk" / "python")]

from services.analyzer import logparse, similar  # noqa: E402
from services.analyzer.cases import case_dirs, request_for  # noqa: E402

DEV = [REPO / "tests" / "fixtures" / "failures", REPO / "tests" / "fixtures" / "corpus" / "dev"]
THRESHOLDS = (0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)


def known() -> list[similar.Known]:
    out = []
    for case in case_dirs(*DEV):
        meta = json.loads((case / "meta.json").read_text())
        request = request_for(case)
        feats = similar.features(logparse.parse(request.log), request.error_type,
                                 request.exit_code if request.HasField("exit_code") else None,
                                 request.signal if request.HasField("signal") else None)
        out.append(similar.Known(case.name, meta.get("cause") or meta.get("description") or case.name, meta["expected_category"],
                                 meta["expected_phase"], {f: round(w, 3) for f, w in sorted(feats.items())}))
    return out


def cross_validate(rows: list[similar.Known]) -> dict:
    index = similar.Index(rows)
    answers = [(index.nearest(k.features, exclude=frozenset({k.cause})), k) for k in rows]
    table = []
    for t in THRESHOLDS:
        given = [(m, k) for m, k in answers if m is not None and m.score >= t and m.category != "UNKNOWN"]
        right = sum(m.category == k.category for m, k in given)
        table.append({"threshold": t, "cases": len(rows), "answered": len(given), "right": right})
        print(f"score >= {t:<4}: answers {len(given)}/{len(rows)}, right {right}/{len(given)}"
              f" ({right / len(given):.0%})" if given else f"score >= {t}: no answers")
    return {"cases": len(rows), "k": similar.K, "table": table}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cross-validate", action="store_true")
    args = p.parse_args(argv)
    rows = known()
    if args.cross_validate:
        result = cross_validate(rows)
        out = REPO / "bench" / "results" / "known_failures_cross_validation.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"saved {out.relative_to(REPO)}")
        return 0
    similar.DATA.write_text(json.dumps({"made_by": "scripts/known_failures.py", "known": [
        {"name": k.name, "cause": k.cause, "category": k.category, "phase": k.phase, "features": k.features}
        for k in rows]}, indent=0, sort_keys=False) + "\n")
    print(f"{len(rows)} known failures written to {similar.DATA.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
