"""Two runs side by side through the real services: a job and its retry with a changed learning rate,
compared by the SDK and by `ftlab compare`: the config change, losses, speed, answers to the same
prompt, and the retry's lineage."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ftlab import Client
from ftlab.v1 import job_pb2

pytestmark = pytest.mark.slow
PROMPT = "What is 2 plus 3?"


def test_a_job_and_its_retry_side_by_side(server, job_config):
    config = {**job_config, "max_steps": 8, "eval_steps": 4, "save_steps": 4,
              "samples": {"prompts": [PROMPT], "max_new_tokens": 6}}
    with Client(server.address, user="compare") as client:
        first = client.create_job(config)
        assert client.wait(first.name, timeout=240).state == job_pb2.JOB_STATE_SUCCEEDED
        second = client.retry_job(first.name, {"learning_rate": 1e-3, "max_steps": 12}, checkpoint="latest")
        assert client.wait(second.name, timeout=240).state == job_pb2.JOB_STATE_SUCCEEDED
        result = client.compare([first.name, second.name])
    a, b = result.runs
    assert result.changes["learning_rate"] == [config["learning_rate"], 1e-3]
    assert result.changes["max_steps"] == ["8", "12"] and "lora.rank" not in result.changes
    assert (a.steps, b.steps) == (8, 12) and a.lineage == [] and b.lineage == [first.name]
    assert a.best_eval_step in (4, 8) and b.best_eval_loss is not None and a.tokens_per_second > 0
    assert len(a.losses) == 8 and a.train_loss == a.losses[-1] and a.best_train_loss == min(a.losses)
    assert result.prompts == [PROMPT] and a.answers[PROMPT] and PROMPT in b.answers

    env = {**os.environ, "FTLAB_USER": "compare"}
    cli = [sys.executable, "-m", "services.cli.main", "--address", server.address, "compare", first.id, second.id]
    shown = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    for words in ("config: what differs from the first", "learning_rate", "training loss", PROMPT,
                  f"{first.id}"):
        assert words in shown.stdout, (words, shown.stdout)
    as_json = json.loads(subprocess.run([*cli, "--json"], capture_output=True, text=True, env=env, timeout=120).stdout)
    assert [r["name"] for r in as_json["runs"]] == [first.name, second.name]
    other = subprocess.run([*cli[:-2], first.id], capture_output=True, text=True, timeout=120,
                           env={**env, "FTLAB_USER": "someone-else"})
    assert other.returncode == 3  # another user's job is not found
