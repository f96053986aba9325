"""The failure corpus's bare-TRL logs: run every case of scripts/bare_trl_cases.py for real through
scripts/bare_trl.py and keep its combined output and exit status.

    .venv/bin/python scripts/bare_trl_corpus.py [--only NAME ...] [--out tests/fixtures/corpus]

Each run has its own datasets cache and the hub offline, on the same tiny model, damaged models and
datasets as the trainer's cases (scripts/failure_corpus.py). The result goes to
OUT/<split>/bare-<name>/ as log.txt (the last 400 lines, paths scrubbed) and meta.json; a case that
did not fail is reported and not kept. The analyzer gets what a bare script leaves: its log and exit
status, nothing of FineTune Lab's trainer. What a held-out case failed with is not printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "sdk" / "python"), str(REPO / "scripts")]

import capture_failure  # noqa: E402
from bare_trl_cases import CASES  # noqa: E402
from failure_corpus import acting, damage, given, small_filesystem, split_for, write_datasets, write_models  # noqa: E402

SCRIPT = REPO / "scripts" / "bare_trl.py"


def script_config(case: dict, models: dict[str, str], data: Path, workdir: Path) -> dict:
    return {"trainer": case["trainer"], "model": models.get(case["model"], case["model"]),
            "train_file": str(data / case["data"]),
            "eval_file": str(data / case["eval"]) if case.get("eval") else None,
            "chat_template": case.get("chat_template"), "peft": case["peft"],
            "model_kwargs": case.get("model_kwargs", {}), "resume_from_checkpoint": case.get("resume_latest"),
            "args": {**case["args"], "output_dir": str(workdir / "out")}}


def run_script(config: dict, workdir: Path, on_step=None, timeout: float = 600, rlimit_as: int | None = None) -> dict:
    """Run the bare script on `config`; `on_step(pid)` at its first logged loss; `rlimit_as` limits its
    address space from the start."""
    path = workdir / f"config-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(config, indent=2))
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_CACHE=str(workdir / "datasets-cache"),
               PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    for name in ("FTLAB_HOME", "PYTHONPATH"):
        env.pop(name, None)
    started = time.monotonic()
    limit = None if rlimit_as is None else (lambda: resource.setrlimit(resource.RLIMIT_AS, (rlimit_as, rlimit_as)))
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=workdir, env=env, text=True, errors="replace",
                            preexec_fn=limit)
    lines, acted = [], False
    deadline = started + timeout
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if on_step is not None and not acted and "'loss'" in line:
            acted = True
            on_step(proc.pid)
        if time.monotonic() > deadline:
            proc.kill()
    code = proc.wait()
    return {"exit_code": code, "signal": -code if code < 0 else None, "lines": lines,
            "duration_s": round(time.monotonic() - started, 1)}


def run_case(case: dict, models: dict[str, str], data: Path, out_root: Path, split: str) -> str:
    with tempfile.TemporaryDirectory(prefix="ftlab-bare-") as tmp, \
            small_filesystem(Path(tmp) / "out", case.get("tmpfs")), \
            small_filesystem(Path(tmp) / "datasets-cache", case.get("tmpfs_cache")):  # filesystems that fill
        workdir = Path(tmp)
        config = script_config(case, models, data, workdir)
        if case.get("resume"):
            good = dict(config, args={**config["args"], "max_steps": 2, "save_strategy": "steps", "save_steps": 2})
            first = run_script(good, workdir)
            found = sorted(workdir.rglob("checkpoint-2"))
            if first["exit_code"] != 0 or not found:
                return "not produced: the good run left no checkpoint"
            damage(found[0], case["resume"])
            config["resume_from_checkpoint"] = str(found[0])
        on_step, _ = acting(case)
        result = run_script(config, workdir, on_step, rlimit_as=case.get("rlimit_as_start"))
        if result["exit_code"] == 0 and case["category"] != "NAN_OR_DIVERGENCE":
            return "did not fail (exit 0): not kept"
        out = out_root / split / f"bare-{case['name']}"
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        model = config["model"].removeprefix("file://")
        model = model if Path(model).is_absolute() else ""
        scrub = lambda text: capture_failure.scrub(text, workdir, model, str(data / "x"), str(data.parent))  # noqa: E731
        (out / "log.txt").write_text(scrub("\n".join(result["lines"][-400:]) + "\n"))
        meta = {"case_id": out.name, "description": case["how"], "cause": case["cause"], "split": split,
                "expected_category": case["category"], "expected_phase": case["phase"], "round": case.get("round"),
                "exit_code": result["exit_code"], "signal": result["signal"], "config": config,
                "how_produced": f"scripts/bare_trl_corpus.py ran scripts/bare_trl.py (plain TRL) on this config: "
                                f"{case['how']}",
                "kind": "failure", "runtime": {"act": case.get("act"), "resume_damage": case.get("resume"),
                                               "env": {"HF_HUB_OFFLINE": "1"},
                                               **given(case, tmpfs="output_dir_tmpfs_bytes",
                                                       rlimit_as_start="rlimit_as_bytes",
                                                       tmpfs_cache="datasets_cache_tmpfs_bytes")},
                "versions": capture_failure._versions(), "duration_s": result["duration_s"],
                "log_lines_total": len(result["lines"]), "log_trimmed_to_last_400": len(result["lines"]) > 400}
        (out / "meta.json").write_text(scrub(json.dumps(meta, indent=2)) + "\n")
        last = next((x for x in reversed(result["lines"]) if x.strip()), "")
        return f"exit {result['exit_code']}: {last[:100]}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", default=None, help="case names to run (default: all)")
    p.add_argument("--out", default=str(REPO / "tests" / "fixtures" / "corpus"))
    args = p.parse_args(argv)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    cases = [c for c in CASES if args.only is None or c["name"] in args.only]
    with tempfile.TemporaryDirectory(prefix="ftlab-bare-inputs-") as tmp:
        root = Path(tmp)
        write_datasets(root / "data")
        (root / "data" / "text.jsonl").write_text("".join(json.dumps({"text": f"{a} plus {a} is {2 * a}."}) + "\n"
                                                          for a in range(64)))
        models = write_models(root / "models")
        for c in cases:
            split = split_for(c["cause"])
            try:
                outcome = run_case(c, models, root / "data", Path(args.out), split)
            except Exception as exc:  # one case that cannot be produced does not stop the others
                outcome = f"not produced: {type(exc).__name__}: {exc}"
            if split == "test":  # what a held-out case failed with is not looked at here
                outcome = "not kept" if "not kept" in outcome or "not produced" in outcome else "kept"
            print(f"{split:4} {c['name']:32} {c['category']:26} {outcome}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
