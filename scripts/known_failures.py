"""The known failures the analyzer compares an undecided run with (services/analyzer/similar.py).

    .venv/bin/python scripts/known_failures.py                   # rewrites services/analyzer/data/known_failures.json
    .venv/bin/python scripts/known_failures.py --cross-validate  # scores it on the development half

Only the development half goes in (tests/fixtures/failures and tests/fixtures/corpus/dev); the test
half is never read here. `--cross-validate` predicts every development log that raised an exception
from the others, leaving out all logs of its own cause (a cause seen once in the corpus is as new as
one never seen; the weights are counted without them too), and prints how many it answers and how
many of those are right at each threshold, over all of them and over those no specific rule decides
(the most like the runs it will be asked about): the threshold in similar.py was chosen from that
table. Run it again when the development half grows.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "sdk" / "python")]

from services.analyzer import logparse, rules, similar  # noqa: E402
from services.analyzer.cases import case_dirs, request_for  # noqa: E402

DEV = [REPO / "tests" / "fixtures" / "failures", REPO / "tests" / "fixtures" / "corpus" / "dev"]
THRESHOLDS = (0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)


def label(case: Path, meta: dict) -> str:
    """What the evidence names a known failure by: its cause as the corpus wrote it down, or for the
    first fixtures (whose description is a long account) their name in words ("cpu-01_dataset_missing":
    "dataset missing")."""
    if meta.get("cause"):
        return str(meta["cause"])
    return re.sub(r"^(cpu|h100)-(ftlab-)?(\d+\w?_)?", "", case.name).replace("_", " ")


def known() -> list[similar.Known]:
    out = []
    for case in case_dirs(*DEV):
        meta = json.loads((case / "meta.json").read_text())
        request = request_for(case)
        feats = similar.features(logparse.parse(request.log), request.error_type,
                                 request.exit_code if request.HasField("exit_code") else None,
                                 request.signal if request.HasField("signal") else None)
        out.append(similar.Known(case.name, label(case, meta), meta["expected_category"], meta["expected_phase"],
                                 {f: round(w, 3) for f, w in sorted(feats.items())}))
    return out


def left_to_generic_rules() -> set[str]:
    """The development logs that no specific rule decides (a generic rule or none does): the most like
    the runs the closest known failures will be asked about."""
    out = set()
    for case in case_dirs(*DEV):
        request = request_for(case)
        log = logparse.parse(request.log)
        facts = rules.Facts(log, request.exit_code if request.HasField("exit_code") else None,
                            request.signal if request.HasField("signal") else None, request.error_type)
        if not any(not rule.generic and rule.match(replace(facts, raised=raised))
                   for raised in (log.chain or [None]) for rule in rules.RULES):
            out.add(case.name)
    return out


def cross_validate(rows: list[similar.Known]) -> dict:
    """Each development log that raised an exception (the only runs compared), predicted by an index
    built without any log of its cause (its weights too are counted without them)."""
    asked = [k for k in rows if any(f.startswith("exc:") for f in k.features)]
    answers = []
    for k in asked:
        index = similar.Index([other for other in rows if other.cause != k.cause])
        answers.append((index.nearest(k.features), k))
    generic = left_to_generic_rules()
    table = []
    for t in THRESHOLDS:
        row = {"threshold": t, "cases": len(asked)}
        for part, chosen in (("all", answers), ("left_to_generic_rules", [(m, k) for m, k in answers
                                                                           if k.name in generic])):
            given = [(m, k) for m, k in chosen if m is not None and m.score >= t and m.category != "UNKNOWN"]
            right = sum(m.category == k.category for m, k in given)
            row[part] = {"cases": len(chosen), "answered": len(given), "right": right}
        table.append(row)
        a, g = row["all"], row["left_to_generic_rules"]
        print(f"score >= {t:<4}: all {a['right']}/{a['answered']} right of {a['cases']}; "
              f"left to generic rules {g['right']}/{g['answered']} right of {g['cases']}")
    return {"k": similar.K, "min_score": similar.MIN_SCORE, "table": table}


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
