"""The README's "Using it" section, as a new user runs it: every command line of its block, in order,
as written (`ftlab` on the PATH, a fresh home folder, the default address), with the README's own
job file, then its Python SDK example, then the OpenAI-compatible API section's lines. A command line
the README gains or changes in "Using it" fails
`test_every_readme_command_is_walked` until this walk runs it too."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
SECTION = README.split("## Using it", 1)[1].split("\n## ", 1)[0]

# each command of the block -> what is run for it ($JOB: the job the README's submit made; $RUNNING:
# a long job of the same file; $FAILED: one of it that fails; FILE: a download's target); optional
# parts ([...]) are run with and without, and alternatives (a|b) each
WALK: dict[str, list[str]] = {
    "ftlab serve": [],  # started first, in the background
    "ftlab make-tiny-model ./tiny": ["ftlab make-tiny-model ./tiny"],
    "ftlab make-dataset ~/.ftlab/datasets/chat.jsonl": ["ftlab make-dataset ~/.ftlab/datasets/chat.jsonl"],
    "ftlab templates [-v]": ["ftlab templates", "ftlab templates -v"],
    "ftlab submit job.yaml --template basic --set lora.rank=8 --set max_steps=200 --watch":
        ["ftlab submit job.yaml --template basic --set lora.rank=8 --set max_steps=200 --watch"],
    "ftlab submit job.yaml --dry-run": ["ftlab submit job.yaml --dry-run"],
    "ftlab jobs [--state running]": ["ftlab jobs", "ftlab jobs --state running"],
    "ftlab get JOB [--json]": ["ftlab get $JOB", "ftlab get $JOB --json"],
    "ftlab watch JOB [--json]": ["ftlab watch $JOB", "ftlab watch $JOB --json"],
    "ftlab checkpoints JOB": ["ftlab checkpoints $JOB"],
    "ftlab samples JOB [--checkpoint best|latest|NAME]": ["ftlab samples $JOB", "ftlab samples $JOB --checkpoint best"],
    "ftlab artifacts JOB [--json]": ["ftlab artifacts $JOB", "ftlab artifacts $JOB --json"],
    "ftlab download JOB [--what checkpoint|model|adapter|logs|all] [--checkpoint best|latest|NAME] [--merged] -o FILE": [
        "ftlab download $JOB -o checkpoint.zip", "ftlab download $JOB --what adapter -o adapter.zip",
        "ftlab download $JOB --what logs -o logs.zip", "ftlab download $JOB --what all -o all.zip",
        "ftlab download $JOB --checkpoint best -o best.zip", "ftlab download $JOB --checkpoint checkpoint-100 -o c100.zip",
        "ftlab download $JOB --merged -o merged.zip"],
    "ftlab upload ~/.ftlab/datasets/chat.jsonl": ["ftlab upload ~/.ftlab/datasets/chat.jsonl"],
    "ftlab datasets [--json]": ["ftlab datasets", "ftlab datasets --json"],
    # watch ends at PAUSED; the job's cancel comes once its priority was changed while it was paused
    "ftlab cancel JOB | ftlab pause JOB | ftlab resume JOB": ["ftlab pause $RUNNING", "ftlab watch $RUNNING",
                                                             "ftlab resume $RUNNING"],
    "ftlab queue": ["ftlab queue"],
    "ftlab priority JOB 10": ["ftlab pause $RUNNING", "ftlab watch $RUNNING", "ftlab priority $RUNNING 10",
                              "ftlab cancel $RUNNING"],
    "ftlab analyze JOB": ["ftlab analyze $FAILED"],
    "ftlab retry JOB --apply-suggestions [--set learning_rate=1e-5] [--checkpoint best|latest|NAME|none]": [
        "ftlab retry $FAILED --apply-suggestions --set dataset.uri=chat.jsonl --set max_steps=20 --checkpoint none",
        "ftlab retry $JOB --set learning_rate=1e-5 --set max_steps=210 --checkpoint best",
        "ftlab retry $JOB --set max_steps=220 --checkpoint latest"],
    "ftlab compare JOB JOB [JOB ...] [--json]": ["ftlab compare $JOB $FAILED", "ftlab compare $JOB $FAILED --json"],
    # the retries above are queued behind one another; a trainer slot is free for generation once the
    # last of them has ended
    'ftlab generate JOB --prompt "What is 2 plus 3?" [--checkpoint best|latest|NAME] [--stream]': [
        "ftlab watch $LAST", 'ftlab generate $JOB --prompt "What is 2 plus 3?"',
        'ftlab generate $JOB --prompt "What is 2 plus 3?" --checkpoint best --stream'],
    "ftlab eval JOB --task tasks.jsonl [--checkpoint best|latest|NAME] [--watch]": [
        "ftlab eval $JOB --task tasks.jsonl --limit 2 --watch"],
}


def readme_commands() -> list[str]:
    block = SECTION.split("```", 2)[1]
    return [line.split(" #", 1)[0].strip() for line in block.splitlines() if line.startswith("ftlab ")]


def job_file() -> str:
    return SECTION.split("```yaml", 1)[1].split("```", 1)[0]


def openai_commands() -> list[str]:
    """The command lines of the README's OpenAI-compatible API section, comments cut."""
    section = README.split("## OpenAI-compatible API", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    return [line.split(" #", 1)[0].strip() for line in block.splitlines()[1:] if line.strip()]


def python_example() -> str:
    return SECTION.split("```python", 1)[1].split("```", 1)[0]


def test_every_readme_command_is_walked():
    assert readme_commands() == list(WALK), "the README's commands changed: walk them in tests/e2e/test_readme.py"


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_a_new_user_runs_the_readme_as_written(tmp_path):
    for port in (50051, 8080):
        if not _free(port):
            pytest.fail(f"something listens on localhost:{port}, where the README's `ftlab serve` listens")
    home = tmp_path / "user"
    work = home / "work"
    work.mkdir(parents=True)
    (work / "job.yaml").write_text(job_file())
    (work / "tasks.jsonl").write_text("".join(json.dumps({"prompt": f"What is {a} plus {b}?", "answer": str(a + b)})
                                              + "\n" for a, b in ((2, 3), (4, 4), (1, 7))))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTLAB_")}
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", NO_COLOR="1",
               COLUMNS="160")
    jobs: dict[str, str] = {}

    def run(command: str, expect: int = 0) -> subprocess.CompletedProcess:
        for name, job in jobs.items():
            command = command.replace(f"${name}", job)
        done = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == expect, (command, done.returncode, done.stdout[-3000:], done.stderr[-3000:])
        assert "Traceback" not in done.stdout + done.stderr, (command, done.stderr[-3000:])
        return done

    server = subprocess.Popen(["bash", "-c", "exec ftlab serve"], cwd=work, env=env, stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "serve.log", "wb"))
    try:
        wait_for(lambda: subprocess.run(["bash", "-c", "ftlab jobs"], cwd=work, env=env, capture_output=True)
                 .returncode == 0 or server.poll() is not None, timeout=120, what="ftlab serve to answer")
        assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        outputs = {}
        for line in WALK:
            for command in WALK[line]:
                if command.startswith("ftlab submit job.yaml --template"):
                    outputs[command] = run(command)
                    jobs["JOB"] = json.loads(run("ftlab jobs --json").stdout)[0]["name"]
                    _extra_jobs(run, jobs)
                    continue
                outputs[command] = run(command)
                if command.startswith("ftlab retry "):  # the newest job, for the lines that wait on it
                    jobs["LAST"] = re.search(r"jobs/[0-9a-f]+", outputs[command].stdout).group(0)
        _check(outputs, jobs, work)
        example = work / "example.py"
        example.write_text(python_example())
        printed = run(f"{sys.executable} example.py").stdout.splitlines()
        assert printed[-1] == "succeeded" and len(printed) == 101, printed[-5:]  # a line a step, then the state
        # the OpenAI-compatible API section: its lines in one shell (its exports), against the same server
        commands = openai_commands()
        assert commands[0] == "ftlab serve" and commands[-1].startswith("python examples/openai_finetune.py")
        (work / "examples").symlink_to(ROOT / "examples")  # the repository's examples, beside the user's files
        printed = run("set -e\n" + "\n".join(commands[1:])).stdout.splitlines()
        finished = next(line for line in printed if line.startswith("finished "))
        assert re.fullmatch(r"finished ftjob-[0-9a-f]{16} succeeded ft:.+/tiny:quickstart:[0-9a-f]{16}", finished)
        assert any(line.startswith("checkpoint ft:") for line in printed) and printed[-1].startswith("reply ")
    finally:
        server.terminate()
        server.wait(60)
    assert server.returncode == 0, (tmp_path / "serve.log").read_text()[-3000:]


def _extra_jobs(run, jobs) -> None:
    """One of the job file that fails (for analyze and retry), then a long one that trains (for pause,
    resume, priority and cancel)."""
    jobs["FAILED"] = run("ftlab submit job.yaml --set dataset.uri=no-such.jsonl --force").stdout.strip()
    run(f"ftlab watch {jobs['FAILED']}", expect=1)
    jobs["RUNNING"] = run("ftlab submit job.yaml --set max_steps=100000 --name long").stdout.strip()
    wait_for(lambda: int(json.loads(run(f"ftlab get {jobs['RUNNING']} --json").stdout).get("progress", {})
                         .get("step", 0)) >= 1, timeout=120, what="the long job's first step")


def _check(outputs, jobs, work: Path) -> None:
    submitted = outputs["ftlab submit job.yaml --template basic --set lora.rank=8 --set max_steps=200 --watch"]
    assert "SUCCEEDED" in submitted.stdout
    shown = outputs["ftlab get $JOB"].stdout
    assert re.search(r"\* lora.rank +8 +\(template: 16\)", shown) and "display_name" not in shown, shown
    assert "report_to" in shown and "[tensorboard]" in shown
    assert "dry run: nothing was created" in outputs["ftlab submit job.yaml --dry-run"].stdout
    assert "chat.jsonl" in outputs["ftlab datasets"].stdout
    compared = outputs["ftlab compare $JOB $FAILED"].stdout
    assert "dataset.uri" in compared and "no-such.jsonl" in compared and "What is 2 plus 3?" in compared, compared
    assert [r["state"] for r in json.loads(outputs["ftlab compare $JOB $FAILED --json"].stdout)["runs"]] == [
        "succeeded", "failed"]
    generated = outputs['ftlab generate $JOB --prompt "What is 2 plus 3?"']
    assert "adapter:" in generated.stderr and "tokens, first after" in generated.stderr, generated.stderr
    assert "checkpoint-" in outputs['ftlab generate $JOB --prompt "What is 2 plus 3?" --checkpoint best --stream'].stderr
    evaluated = outputs["ftlab eval $JOB --task tasks.jsonl --limit 2 --watch"].stdout
    assert "SUCCEEDED" in evaluated and "exact_match" in evaluated and "FINE-TUNED" in evaluated, evaluated
    answers = outputs["ftlab samples $JOB"].stdout  # evaluations at steps 100 and 200, then the final model
    assert all(f"answers of {when}" in answers for when in ("step 100", "step 200", "the final model")), answers
    assert "What is 2 plus 3?" in outputs["ftlab samples $JOB --checkpoint best"].stdout
    assert "DATASET_NOT_FOUND" in outputs["ftlab analyze $FAILED"].stdout
    assert "(continuation of " in outputs["ftlab retry $JOB --set max_steps=220 --checkpoint latest"].stdout
    assert "(retry of " in outputs["ftlab retry $FAILED --apply-suggestions --set dataset.uri=chat.jsonl "
                               "--set max_steps=20 --checkpoint none"].stdout
    for name in ("checkpoint", "adapter", "logs", "all", "best", "c100", "merged"):
        assert zipfile.ZipFile(work / f"{name}.zip").namelist(), name
    assert any("/tensorboard/" in n for n in zipfile.ZipFile(work / "logs.zip").namelist())  # report_to
