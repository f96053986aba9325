"""Capture a real failed run as an analyzer fixture: run the training child on a config, keep its log.

    python scripts/capture_failure.py NAME --config CFG.json --model DIR --data FILE \
        --category CUDA_OOM --phase EVALUATION --how "what makes it fail" [--env K=V ...] \
        [--stop-after SECONDS] [--out tests/fixtures/failures]

The child is the trainer's own (`services.trainer.child`), started as the trainer starts it, so the
log is what the analyzer sees in production. Writes OUT/NAME/log.txt (stdout and stderr, the last 400
lines) and OUT/NAME/meta.json (how it was produced, exit status, the error event, the expected
category and phase). Local paths become <workdir>, <repo>, <site-packages>, <stdlib>, <venv>.
Never edit the log by hand: produce the failure again instead.

The run goes through the trainer's RunSupervisor, as in the service: `--stop-after S` SIGSTOPs the
child S seconds after its first training step (a hang) and `--step-timeout T` sets the watchdog's
training allowance, so the real watchdog finds it stuck and kills it (STUCK).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOB_ID = "00000000000c0de5"  # ids as the scheduler makes them
sys.path[:0] = [str(REPO), str(REPO / "sdk" / "python")]


def resolved_config(friendly: dict, model: str, data: str):
    """The job's full TrainingConfig, resolved as the scheduler resolves it."""
    from ftlab.config import config_from_dict
    from services.scheduler import jobconfig

    friendly = dict(friendly, base_model=model)
    friendly["dataset"] = dict(friendly.get("dataset", {}), uri=data)
    template = friendly.pop("template", "basic")
    return jobconfig.resolve(template, config_from_dict(friendly))


def as_dict(config) -> dict:
    from google.protobuf import json_format

    return json_format.MessageToDict(config, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def run_child(config, workdir: Path, env_extra: dict[str, str], stop_after: float | None = None,
              step_timeout: float | None = None, timeout: float = 900.0, resume: str = "",
              on_step=None, attempt: int = 1, load_timeout: float | None = None,
              stop_at_start: float | None = None) -> dict:
    """Run one training run through the trainer's RunSupervisor (the code the trainer service uses):
    the child's events, its exit, its log, and the watchdog when `step_timeout` is set.
    `stop_after` SIGSTOPs the child that many seconds after its first training step: a hang.
    `on_step(pid)` is called once, at the child's first training step (to limit or signal it there);
    `resume` is a checkpoint folder to resume from; `load_timeout` the watchdog's limit while loading;
    `stop_at_start` SIGSTOPs the child that many seconds after it was started."""
    import asyncio

    from google.protobuf import json_format

    from ftlab.v1 import job_pb2
    from services.common.settings import Paths
    from services.trainer.supervisor import RunSupervisor

    os.environ.update(env_extra)  # the supervisor hands its environment to the child
    watchdog = job_pb2.WatchdogConfig()
    if step_timeout is not None:
        watchdog.step_timeout_seconds = step_timeout
    if load_timeout is not None:
        watchdog.model_load_timeout_seconds = load_timeout

    async def go():
        supervisor = RunSupervisor(Paths(workdir).ensure(), watchdog_interval=0.5)
        run = await supervisor.start(f"{JOB_ID}-{attempt}", JOB_ID, config, resume, watchdog)
        stopped = stepped = False
        deadline = time.monotonic() + timeout
        if stop_at_start is not None:
            await asyncio.sleep(stop_at_start)
            os.killpg(run.pid, signal.SIGSTOP)
            stopped = True
        while not run.done and time.monotonic() < deadline:
            if on_step is not None and not stepped and any(e.HasField("metrics") for e in run.events):
                stepped = True
                on_step(run.pid)
            if stop_after is not None and not stopped and any(e.HasField("metrics") for e in run.events):
                await asyncio.sleep(stop_after)
                os.killpg(run.pid, signal.SIGSTOP)
                stopped = True
            await asyncio.sleep(0.2)
        if not run.done:
            await supervisor.stop(run.run_id, "cancel", 0)
            while not run.done:
                await asyncio.sleep(0.2)
        return run

    started = time.monotonic()
    run = asyncio.run(go())
    events = [json_format.MessageToDict(e, preserving_proto_field_name=True) for e in run.events]
    finished = next((e["finished"] for e in events if "finished" in e), {})
    return {"exit_code": finished.get("exit_code"), "signal": finished.get("signal"), "events": events,
            "lines": run.log_path.read_text(errors="replace").splitlines(),
            "duration_s": round(time.monotonic() - started, 1)}


def scrub(text: str, workdir: Path, model: str = "", data: str = "", inputs: str = "") -> str:
    """Replace this machine's paths: the model's and the data's folders, the folder of inputs that holds
    both (scripts/failure_corpus.py makes one), packages on sys.path, the run's folder, the repo."""
    pairs = [(str(Path(model).resolve()), "<model>")] if model else []
    pairs += [(str(Path(data).resolve().parent), "<data>")] if data else []
    pairs += [(str(Path(inputs).resolve()), "<inputs>")] if inputs else []
    pairs += [(entry, "<site-packages>") for entry in sys.path + os.environ.get("PYTHONPATH", "").split(os.pathsep)
              if entry and "site" in Path(entry).name]
    pairs += [(sysconfig.get_paths()["purelib"], "<site-packages>"), (sysconfig.get_paths()["stdlib"], "<stdlib>"),
              (sys.prefix, "<venv>"), (str(workdir), "<workdir>"), (str(REPO), "<repo>")]
    for path, name in sorted(pairs, key=lambda pair: -len(pair[0])):
        text = text.replace(path, name)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name")
    p.add_argument("--config", required=True, help="job config (friendly JSON, as `ftlab submit` takes)")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--category", required=True)
    p.add_argument("--phase", required=True)
    p.add_argument("--how", required=True, help="what makes this run fail")
    p.add_argument("--env", action="append", default=[], metavar="K=V")
    p.add_argument("--stop-after", type=float, default=None,
                   help="SIGSTOP the child this many seconds after its first training step (a hang)")
    p.add_argument("--step-timeout", type=float, default=None, help="the watchdog's training allowance")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--out", default=str(REPO / "tests" / "fixtures" / "failures"))
    args = p.parse_args(argv)

    friendly = json.loads(Path(args.config).read_text())
    env_extra = dict(kv.split("=", 1) for kv in args.env)
    with tempfile.TemporaryDirectory(prefix="ftlab-failure-") as tmp:
        workdir = Path(tmp)
        config = resolved_config(friendly, args.model, args.data)
        result = run_child(config, workdir, env_extra, args.stop_after, args.step_timeout, args.timeout)
        out = write_case(Path(args.out) / args.name, friendly, config, result, workdir, args.model, args.data,
                         args.how, args.category, args.phase,
                         {"env": env_extra, "stop_after_s": args.stop_after, "step_timeout_s": args.step_timeout})
    errors = [e["error"] for e in result["events"] if "error" in e]
    print(f"{out}: exit {result['exit_code']} signal {result['signal']}, {len(result['lines'])} log lines, "
          f"error {errors[-1]['type'] if errors else None}")
    return 0


def write_case(out: Path, friendly: dict, config, result: dict, workdir: Path, model: str, data: str, how: str,
               category: str, phase: str, runtime: dict, extra: dict | None = None,
               producer: str = "scripts/capture_failure.py", inputs: str = "") -> Path:
    """OUT/log.txt (the last 400 lines, paths scrubbed) and OUT/meta.json for one run."""
    errors = [e["error"] for e in result["events"] if "error" in e]
    phases = [e["phase_changed"]["phase"] for e in result["events"] if "phase_changed" in e]
    out.mkdir(parents=True, exist_ok=True)
    lines = result["lines"]
    (out / "log.txt").write_text(scrub("\n".join(lines[-400:]) + "\n", workdir, model, data, inputs))
    meta = {
        "case_id": out.name,
        "description": how,
        "expected_category": category,
        "expected_phase": phase,
        "exit_code": result["exit_code"],
        "signal": result["signal"],
        "error_event": errors[-1] if errors else None,
        "last_phase_reported": phases[-1] if phases else None,
        "request": friendly,
        "config": as_dict(config),
        "how_produced": f"{producer} ran the trainer's child (services.trainer.child) on this config: {how}",
        "kind": "failure",
        "runtime": {"python": platform.python_version(), "platform": platform.platform(), **runtime},
        "versions": _versions(),
        "duration_s": result["duration_s"],
        "log_lines_total": len(lines),
        "log_trimmed_to_last_400": len(lines) > 400,
        **(extra or {}),
    }
    (out / "meta.json").write_text(scrub(json.dumps(meta, indent=2), workdir, model, data, inputs) + "\n")
    return out


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("torch", "transformers", "trl", "peft", "datasets", "bitsandbytes"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


if __name__ == "__main__":
    sys.exit(main())
