"""The `ftlab` command against the real server: --json on every read command, a job watched as
JSON lines to its end, and exit statuses a shell can rely on."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import free_port

pytestmark = pytest.mark.slow


def ftlab(server, *args, address=None):
    env = {**os.environ, "FTLAB_USER": "cli"}
    return subprocess.run([sys.executable, "-m", "services.cli.main", "--address", address or server.address,
                           "--timeout", "10", *args], capture_output=True, text=True, env=env, timeout=300)


def test_json_everywhere_and_watch_as_json_lines(server, tiny_model, tmp_path):
    config = tmp_path / "job.json"
    config.write_text(json.dumps({"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 6,
                                  "save_steps": 3, "max_seq_length": 64, "eval_strategy": "no"}))
    submitted = ftlab(server, "submit", str(config), "--json")
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["name"].startswith("jobs/") and job["owner"] == "cli"

    watched = ftlab(server, "watch", job["name"], "--json")
    assert watched.returncode == 0, watched.stderr
    lines = [json.loads(line) for line in watched.stdout.splitlines()]
    assert lines[-1]["state"] == "JOB_STATE_SUCCEEDED"
    assert [int(x["event"]["metrics"]["step"]) for x in lines if "metrics" in x["event"]] == [1, 2, 3, 4, 5, 6]

    for command in (["jobs"], ["get", job["name"]], ["checkpoints", job["name"]], ["artifacts", job["name"]],
                    ["templates"], ["queue"]):
        out = ftlab(server, *command, "--json")
        assert out.returncode == 0, (command, out.stderr)
        json.loads(out.stdout)  # valid JSON, nothing else on stdout
    refused = ftlab(server, "priority", job["name"], "5", "--json")  # an ended job keeps its priority
    assert refused.returncode == 2 and refused.stdout == "" and "FAILED_PRECONDITION" in refused.stderr
    jobs = json.loads(ftlab(server, "jobs", "--json").stdout)
    assert job["name"] in {j["name"] for j in jobs}
    assert [c["name"] for c in json.loads(ftlab(server, "checkpoints", job["name"], "--json").stdout)] == \
        ["checkpoint-3", "checkpoint-6"]
    shown = ftlab(server, "get", job["name"])  # the panel says how the job trained, and why
    assert "trained with:" in shown.stdout and "optimizer = adamw_torch_fused" in shown.stdout, shown.stdout
    # and its whole resolved config, grouped, with what it changed from its template marked
    assert "config (* = changed from template basic):" in shown.stdout and "\n    optimization\n" in shown.stdout
    assert re.search(r"\n     \* max_steps +6  \(template: 0\)\n", shown.stdout), shown.stdout


def test_exit_statuses(server, tiny_model, tmp_path):
    assert ftlab(server, "get", "jobs/0000000000000000").returncode == 3  # NOT_FOUND
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "learning_rate": -1}))
    invalid = ftlab(server, "submit", str(bad))
    assert invalid.returncode == 2 and "learning_rate" in invalid.stderr  # INVALID_ARGUMENT, the field named
    assert ftlab(server, "jobs", address=f"127.0.0.1:{free_port()}").returncode == 5  # nothing listening
    failing = tmp_path / "failing.json"
    failing.write_text(json.dumps({"base_model": str(tiny_model), "dataset": {"uri": "missing.jsonl"}}))
    submitted = ftlab(server, "submit", str(failing), "--force", "--watch")
    assert submitted.returncode == 1 and "FAILED" in submitted.stdout  # the job failed
    assert ftlab(server, "no-such-command").returncode == 2


def test_relative_paths_are_taken_from_where_the_user_wrote_them(server, tiny_model, tmp_path, monkeypatch):
    """"./tiny" in a job file is next to the file; in the SDK, in the caller's folder. A plain dataset
    name stays a name in the server's datasets folder."""
    from ftlab import Client

    job_file = tiny_model.parent / "relative-job.json"
    job_file.write_text(json.dumps({"base_model": f"./{tiny_model.name}", "dataset": {"uri": "chat.jsonl"},
                                    "max_steps": 1, "max_seq_length": 64, "eval_strategy": "no"}))
    submitted = ftlab(server, "submit", str(job_file), "--json")  # run from the repository, elsewhere
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["config"]["base_model"] == str(tiny_model) and job["config"]["dataset"]["uri"] == "chat.jsonl"
    assert ftlab(server, "cancel", job["name"]).returncode == 0

    monkeypatch.chdir(tiny_model.parent.parent)
    with Client(server.address, user="cli") as client:
        checked = client.create_job({"base_model": f"./{tiny_model.parent.name}/../{tiny_model.parent.name}/"
                                                   f"{tiny_model.name}", "dataset": {"uri": "chat.jsonl"}},
                                    validate_only=True)
    assert checked.config.base_model == str(tiny_model)


def test_a_job_file_keeps_its_template_name_and_priority_out_of_the_config_whatever_the_flags(server, tiny_model,
                                                                                              tmp_path):
    """The README's own line: a job.yaml holding `template: basic`, submitted with --template and --set."""
    job_file = tmp_path / "job.yaml"
    job_file.write_text(f"template: basic\ndisplay_name: from the file\npriority: 3\nbase_model: {tiny_model}\n"
                        "dataset: {uri: chat.jsonl}\nmax_seq_length: 64\neval_strategy: 'no'\n")
    out = ftlab(server, "submit", str(job_file), "--template", "basic", "--set", "lora.rank=8", "--set",
                "max_steps=2", "--set", "lora.target_modules=[q_proj, v_proj]", "--name", "from the flag", "--json")
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)
    assert job["template"] == "basic" and job["display_name"] == "from the flag" and job["priority"] == 3
    assert job["config"]["lora"]["rank"] == 8 and job["config"]["lora"]["target_modules"] == ["q_proj", "v_proj"]
    ftlab(server, "cancel", job["name"])


@pytest.mark.parametrize("name,text,said", [
    ("unclosed.yaml", "base_model: x\ndataset: {uri: chat.jsonl\n", "unclosed.yaml line 3, column 1: not valid YAML"),
    ("list.yaml", "- base_model: x\n- dataset: y\n", "list.yaml: a job file holds a mapping of fields"),
    ("bad.json", '{"base_model": "x",\n "max_steps": }\n', "bad.json line 2, column 15: not valid JSON"),
    ("field.yaml", "base_model: x\nlora:\n  rnk: 8\n", "field.yaml line 3: lora.rnk: no such field"),
    ("value.yaml", "base_model: x\nmax_steps: lots\n", "value.yaml line 2: max_steps: cannot use 'lots'"),
    ("priority.yaml", "base_model: x\npriority: high\n", "priority.yaml line 2: priority: cannot use 'high'"),
])
def test_a_bad_job_file_gets_one_line_naming_the_file_the_line_and_the_field(server, tmp_path, name, text, said):
    path = tmp_path / name
    path.write_text(text)
    out = ftlab(server, "submit", str(path))
    assert out.returncode == 2, out.stderr
    assert said in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_the_help_says_what_the_exit_statuses_mean_and_an_empty_listing_is_done(server):
    helped = ftlab(server, "--help")
    assert "an empty listing is done too" in " ".join(helped.stdout.split())
    empty = subprocess.run([sys.executable, "-m", "services.cli.main", "--address", server.address, "jobs"],
                           capture_output=True, text=True, env={**os.environ, "FTLAB_USER": "nobody-has-jobs"})
    assert empty.returncode == 0, empty.stderr


def test_messages_in_the_users_words(server, tiny_model, tmp_path):
    """A misspelled field or value gets the nearest one; a server that is not there is named with what to
    do; a pre-flight refusal names the CLI's flag; `watch --json | head` ends quietly; --merged means
    the adapter."""
    typo = tmp_path / "typo.yaml"
    typo.write_text(f"base_model: {tiny_model}\nlearnig_rate: 0.001\n")
    out = ftlab(server, "submit", str(typo))
    assert out.returncode == 2 and "learnig_rate: no such field (did you mean 'learning_rate'?)" in out.stderr
    out = ftlab(server, "submit", str(typo), "--set", "adapter=lorra")
    assert "did you mean 'learning_rate'?" in out.stderr  # the file is read first
    typo.write_text(f"base_model: {tiny_model}\nadapter: lorra\n")
    out = ftlab(server, "submit", str(typo))
    assert "adapter: unknown value 'lorra'; did you mean 'lora'? one of full, lora, qlora" in out.stderr

    port = free_port()
    out = ftlab(server, "jobs", address=f"127.0.0.1:{port}")
    assert out.returncode == 5 and f"no FineTune Lab server answers at 127.0.0.1:{port}" in out.stderr
    assert "ftlab serve" in out.stderr and "failed to connect to all addresses" not in out.stderr

    missing = tmp_path / "missing-data.json"
    missing.write_text(json.dumps({"base_model": str(tiny_model), "dataset": {"uri": "no-such.jsonl"}}))
    out = ftlab(server, "submit", str(missing))
    assert out.returncode == 2 and "add --force to queue it anyway" in out.stderr and "set force" not in out.stderr

    job = json.loads(ftlab(server, "submit", str(_ok(tmp_path, tiny_model)), "--json").stdout)
    env = {**os.environ, "FTLAB_USER": "cli"}
    piped = subprocess.run(f"{sys.executable} -m services.cli.main --address {server.address} watch {job['name']} "
                           "--json | head -n 1", shell=True, capture_output=True, text=True, env=env, timeout=300)
    assert piped.stdout.count("\n") == 1 and "Broken pipe" not in piped.stderr and "Traceback" not in piped.stderr
    ftlab(server, "watch", job["name"])
    merged = ftlab(server, "download", job["name"], "--merged", "-o", str(tmp_path / "merged.zip"))
    assert merged.returncode == 0, merged.stderr
    assert (tmp_path / "merged.zip").stat().st_size > 0


def _ok(tmp_path, tiny_model):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps({"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 4,
                                "save_steps": 0, "max_seq_length": 64, "eval_strategy": "no"}))
    return path


def test_enum_values_are_shown_as_a_job_file_writes_them(server):
    shown = ftlab(server, "templates", "-v")
    assert shown.returncode == 0, shown.stderr
    assert '"eval_strategy": "steps"' in shown.stdout and '"adapter": "full"' in shown.stdout
    assert "ADAPTER_" not in shown.stdout and "EVAL_STRATEGY_" not in shown.stdout
    bad = ftlab(server, "jobs", "--state", "foo")
    assert bad.returncode == 2 and "--state: unknown state 'foo'; one of queued" in bad.stderr, bad.stderr
    assert "Enum" not in bad.stderr and "JOB_STATE_" not in bad.stderr


def test_words_turn_enum_names_into_what_a_user_types():
    from services.cli.render import words

    assert [words(v) for v in ("ADAPTER_QLORA", "METHOD_DPO", "EVAL_STRATEGY_STEPS", "DATASET_FORMAT_AUTO",
                               "PRECISION_BF16", "0.001", "q_proj,v_proj")] == \
        ["qlora", "dpo", "steps", "auto", "bf16", "0.001", "q_proj,v_proj"]


def test_submit_says_what_pre_flight_warned_of_with_the_value_to_try(server, tiny_model, tmp_path):
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 2,
                                 "max_seq_length": 16, "save_steps": 0, "eval_strategy": "no"}))
    out = ftlab(server, "submit", str(short))
    assert out.returncode == 0, out.stderr
    assert "pre-flight sequence_length: warn" in out.stderr and "of rows are longer than" in out.stderr, out.stderr
    assert "try max_seq_length: 16 -> " in out.stderr, out.stderr
    job = out.stdout.strip()
    shown = ftlab(server, "get", job)
    assert "try max_seq_length: 16 -> " in shown.stdout and "ADAPTER_" not in shown.stdout
    ftlab(server, "cancel", job)


def test_a_download_that_gets_nothing_leaves_no_part_file(server, tiny_model, tmp_path):
    job = json.loads(ftlab(server, "submit", str(_ok(tmp_path, tiny_model)), "--json").stdout)
    ftlab(server, "watch", job["name"])
    target = tmp_path / "nothing.zip"
    out = ftlab(server, "download", job["name"], "--checkpoint", "checkpoint-999", "-o", str(target))
    assert out.returncode == 3 and "checkpoint-999" in out.stderr, out.stderr
    assert not list(tmp_path.glob("nothing.zip*")), list(tmp_path.iterdir())


def test_a_dry_run_prints_the_resolved_config_and_pre_flight_and_creates_nothing(server, tiny_model, tmp_path):
    before = {j["name"] for j in json.loads(ftlab(server, "jobs", "--json").stdout)}
    out = ftlab(server, "submit", str(_ok(tmp_path, tiny_model)), "--set", "adapter=qlora", "--dry-run")
    assert "dry run: nothing was created" in out.stdout and '"adapter": "qlora"' in out.stdout, out.stdout
    assert '"learning_rate"' in out.stdout, "the template's values are resolved in"
    assert "pre-flight" in out.stdout
    ok = ftlab(server, "submit", str(_ok(tmp_path, tiny_model)), "--dry-run", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["preflight"]["ok"] is True
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"base_model": str(tiny_model), "dataset": {"uri": "no-such.jsonl"}}))
    refused = ftlab(server, "submit", str(missing), "--dry-run")
    assert refused.returncode == 2 and "it would be refused" in refused.stdout
    assert {j["name"] for j in json.loads(ftlab(server, "jobs", "--json").stdout)} == before, "nothing was created"


def test_dpo_rewards_and_token_accuracy_reach_watch_and_get(server, tiny_model, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"What is {a} plus 1?", "chosen": f"{a + 1}.",
                                         "rejected": f"{a + 7}."}) + "\n" for a in range(32)))
    job = tmp_path / "dpo.json"
    job.write_text(json.dumps({"base_model": str(tiny_model), "method": "dpo", "dataset": {"uri": str(pairs)},
                               "max_steps": 3, "save_steps": 0, "max_seq_length": 64, "eval_strategy": "no"}))
    name = ftlab(server, "submit", str(job)).stdout.strip()
    watched = ftlab(server, "watch", name)  # piped: a line per event
    assert watched.returncode == 0, watched.stderr
    steps = [line for line in watched.stdout.splitlines() if line.startswith("step ")]
    assert steps and all("token accuracy " in s and "rewards chosen " in s and " margin " in s
                                   for s in steps), watched.stdout
    shown = ftlab(server, "get", name).stdout
    assert re.search(r"DPO rewards: chosen [+-]\d\.\d{3}  rejected [+-]\d\.\d{3}  margin [+-]\d\.\d{3}  accuracy \d+%",
                     shown), shown
    assert re.search(r"token accuracy \d+\.\d%  entropy \d+\.\d\d", shown), shown
    as_json = json.loads(ftlab(server, "get", name, "--json").stdout)
    assert set(as_json["progress"]["rewards"]) == {"chosen", "rejected", "margins", "accuracies"}
