"""Do the analyzer's suggestions fix the job? Every case of the failure corpus whose fix is one
config field (`fix` in scripts/failure_cases.py, decided from the cause before any run), run as a
real FineTune Lab job through `ftlab serve`, on the same tiny model, damaged models and datasets:

1. CreateJob with validate_only: is the cause caught before any run (validation or pre-flight)?
2. CreateJob with force, so that it runs and fails as it would have without pre-flight; then the
   failure analysis: its category, and whether a suggestion changes the field at fault.
3. `ftlab retry JOB --apply-suggestions`, literally through the CLI, and the new job's end: fixed
   when it succeeds; otherwise how it ended.

    .venv/bin/python bench/suggestion_fixes.py [--only NAME ...]

Prints a line per case and the counts for each half of the corpus (the split is the corpus's own);
saves bench/results/suggestion_fixes.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from failure_cases import CASES  # noqa: E402
from failure_corpus import split_of, write_datasets, write_models  # noqa: E402

from ftlab import Client, FtlabError  # noqa: E402
from ftlab.v1 import analyzer_pb2, job_pb2  # noqa: E402
from tests.helpers import start_server  # noqa: E402

OUT = ROOT / "bench" / "results" / "suggestion_fixes.json"


def runnable(case: dict) -> bool:
    """As a plain job: nothing done to the process, no damaged checkpoint, no special environment."""
    return "fix" in case and not case.get("act") and not case.get("resume") and not case.get("env")


def job_config(case: dict, models: dict[str, str]) -> dict:
    config = json.loads(json.dumps(case["config"]).replace("@data/", ""))
    config["base_model"] = models.get(case["model"], case["model"].removeprefix("hub:"))
    config.setdefault("dataset", {})["uri"] = case["data"]  # a name in FTLAB_HOME/datasets
    return config


def _on(field: str, fix: str) -> bool:
    """A suggestion on `field` changes the field at fault `fix` (or a part of it, or the whole)."""
    return field == fix or field.startswith(fix + ".") or fix.startswith(field + ".")


def retry_cli(address: str, job_id: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "services.cli.main", "--address", address, "retry", job_id,
                           "--apply-suggestions", "-q"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    return done.returncode, (done.stdout.strip() or done.stderr.strip())


def run_case(client: Client, address: str, case: dict, models: dict[str, str]) -> dict:
    config = job_config(case, models)
    out: dict = {"name": case["name"], "fix_field": case["fix"], "expected_category": case["category"]}
    try:
        would_be = client.create_job(config, validate_only=True)
        failed = [c for c in would_be.preflight.checks if c.status == analyzer_pb2.CHECK_STATUS_FAIL]
        out["caught_before_run"] = "; ".join(f"{c.name}: {c.message}" for c in failed)
        out["preflight_suggests_fix_field"] = any(_on(p.field, case["fix"]) for c in failed for p in c.suggestions)
    except FtlabError as exc:
        out["caught_before_run"] = str(exc)
    try:
        job = client.create_job(config, force=True)
    except FtlabError as exc:  # refused by validation: it can never run; does the message name the field?
        named = [f for f, _ in exc.field_violations] + [exc.message]
        out.update(outcome="refused at submission", names_field=any(case["fix"] in n for n in named))
        return out
    ended = client.wait(job.name, timeout=600)
    if ended.state != job_pb2.JOB_STATE_FAILED:
        out.update(outcome=f"did not fail as a job ({job_pb2.JobState.Name(ended.state)})")
        return out
    deadline = time.monotonic() + 120
    while not (ended := client.get_job(job.name)).analysis.category and time.monotonic() < deadline:
        time.sleep(0.5)
    analysis = ended.analysis
    out["error"] = f"{ended.error.type}: {ended.error.message[:200]}"
    out["category"] = analyzer_pb2.FailureCategory.Name(analysis.category).removeprefix("FAILURE_CATEGORY_")
    out["suggestions"] = [f"{s.field}: {s.current} -> {s.suggested}" for s in analysis.suggestions]
    out["suggests_fix_field"] = any(_on(s.field, case["fix"]) for s in analysis.suggestions)
    code, said = retry_cli(address, ended.id)
    if code != 0:
        out.update(outcome="retry refused", retry_said=said.splitlines()[-1] if said else "")
        return out
    retried = client.wait(f"jobs/{said.split()[-1]}", timeout=600)
    out["retry_changes"] = [f"{c.field}: {c.current} -> {c.suggested}" for c in retried.changes]
    if retried.state == job_pb2.JOB_STATE_SUCCEEDED:
        out["outcome"] = "fixed"
    else:
        out["outcome"] = f"retry {job_pb2.JobState.Name(retried.state).removeprefix('JOB_STATE_').lower()}"
        out["retry_error"] = retried.error.message[:300]
    return out


# what a held-out row keeps: enough to count it, nothing of what its analysis said
_COUNTED = ("name", "split", "outcome", "caught_before_run", "names_field", "suggests_fix_field", "seconds")


def summary(rows: list[dict]) -> dict:
    ran = [r for r in rows if r["outcome"] not in ("refused at submission",) and not r["outcome"].startswith("did not")]
    return {"cases": len(rows), "caught_before_run": sum(bool(r["caught_before_run"]) for r in rows),
            "refused_at_submission": sum(r["outcome"] == "refused at submission" for r in rows),
            "refused_naming_the_field": sum(r.get("names_field", False) for r in rows),
            "did_not_fail_as_jobs": sum(r["outcome"].startswith("did not") for r in rows),
            "failed_as_jobs": len(ran), "suggestion_on_the_field_at_fault": sum(r.get("suggests_fix_field", False)
                                                                                for r in ran),
            "fixed_by_retry_with_suggestions": sum(r["outcome"] == "fixed" for r in ran)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    splits = split_of(CASES)
    cases = [c for c in CASES if runnable(c) and (args.only is None or c["name"] in args.only)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="ftlab-suggestions-") as tmp:
        home = Path(tmp)
        write_datasets(home / "datasets")
        models = write_models(home / "models")
        server = start_server(home, name="bench", env={"FTLAB_LOG_LEVEL": os.environ.get("FTLAB_LOG_LEVEL", "INFO")})
        try:
            with Client(server.address) as client:
                for case in cases:
                    started = time.monotonic()
                    row = run_case(client, server.address, case, models)
                    row.update(split=splits[case["cause"]], seconds=round(time.monotonic() - started, 1))
                    rows.append(row)
                    if row["split"] == "test":  # held out: counted, not looked at case by case (nor kept)
                        rows[-1] = {k: (bool(v) if k == "caught_before_run" else v) for k, v in row.items()
                                    if k in _COUNTED}
                        print(f"test {case['name']:34} (held out)", flush=True)
                        continue
                    if args.only is not None:
                        print(json.dumps(row, indent=1), flush=True)
                    print(f"dev  {case['name']:34} {case['fix']:22} {row['outcome']:24} "
                          f"suggested on the field: {row.get('suggests_fix_field', '-')!s:5} "
                          f"caught before run: {'yes' if row['caught_before_run'] else 'no'}", flush=True)
        finally:
            server.stop()
    result = {"command": "bench/suggestion_fixes.py", "halves": {
        half: summary([r for r in rows if r["split"] == half]) for half in ("dev", "test")}, "cases": rows}
    for half, figures in result["halves"].items():
        print(f"{half}: {json.dumps(figures)}")
    if args.only is None:
        OUT.write_text(json.dumps(result, indent=2) + "\n")
        print(f"saved {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
