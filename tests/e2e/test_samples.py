"""Answers to sample prompts and early stopping through the real services: the answers stream through
WatchJob and `ftlab watch`, `ftlab samples` and the SDK list them by checkpoint, and an early stop is
the job's stated end with its best checkpoint the one recommended."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ftlab import Client
from ftlab.v1 import job_pb2

pytestmark = pytest.mark.slow
PROMPTS = ["What is 2 plus 3?", "What is 40 plus 2?"]


def ftlab(server, *args):
    env = {**os.environ, "FTLAB_USER": "samples"}
    return subprocess.run([sys.executable, "-m", "services.cli.main", "--address", server.address, *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_answers_stream_and_are_listed_by_checkpoint_and_early_stopping_is_the_stated_end(server, job_config,
                                                                                           tmp_path):
    config = {**job_config, "max_steps": 40, "eval_steps": 2, "save_steps": 0, "early_stopping_patience": 2,
              "early_stopping_threshold": 100.0, "samples": {"prompts": PROMPTS, "max_new_tokens": 6}}
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(config))
    submitted = ftlab(server, "submit", str(job_file), "--json")
    assert submitted.returncode == 0, submitted.stderr
    name = json.loads(submitted.stdout)["name"]
    watched = ftlab(server, "watch", name)  # not a terminal: a line per event
    assert watched.returncode == 0, watched.stderr
    assert "answer step 2: What is 2 plus 3? ->" in watched.stdout and "answer final model:" in watched.stdout

    with Client(server.address, user="samples") as client:
        job = client.get_job(name)
        assert job.state == job_pb2.JOB_STATE_SUCCEEDED
        assert job.state_reason.startswith("stopped early at step 6"), job.state_reason
        streamed = [r.event.samples for r in client.watch(name, follow=False) if r.event.HasField("samples")]
        assert [(s.step, s.final) for s in streamed] == [(2, False), (4, False), (6, False), (6, True)]
        assert all([a.prompt for a in s.answers] == PROMPTS for s in streamed)
        (best,) = [c for c in client.list_checkpoints(name) if c.is_best]
        assert best.name == "checkpoint-2"
        at_best = client.list_samples(name, "best")
        assert [s.step for s in at_best] == [2] and at_best[0].answers == streamed[0].answers
    listed = ftlab(server, "samples", name, "--checkpoint", "best")
    assert listed.returncode == 0 and "answers of step 2" in listed.stdout and PROMPTS[1] in listed.stdout, \
        listed.stdout
    as_json = json.loads(ftlab(server, "samples", name, "--json").stdout)
    assert len(as_json) == 4 and as_json[-1]["final"] is True
    missing = ftlab(server, "samples", name, "--checkpoint", "checkpoint-99")
    assert missing.returncode == 3 and "checkpoint-99" in missing.stderr


def test_bad_sample_and_early_stopping_settings_name_their_field(server, job_config):
    with Client(server.address, user="samples") as client:
        for changes, field in (({"samples": {"max_new_tokens": 0}}, "config.samples.max_new_tokens"),
                               ({"samples": {"prompts": [""]}}, "config.samples.prompts"),
                               ({"early_stopping_patience": 3, "eval_strategy": "no"}, "config.early_stopping_patience"),
                               ({"samples": {"prompts_uri": ".store/prompts.txt"}}, "config.samples.prompts_uri")):
            with pytest.raises(Exception) as err:
                client.create_job({**job_config, **changes})
            assert field in [f for f, _ in err.value.field_violations], (changes, err.value)


def test_pre_flight_reads_the_file_of_prompts(server, server_home, job_config):
    (server_home / "datasets" / "prompts.txt").write_text("What is 1 plus 1?\nWhat is 2 plus 2?\n")
    with Client(server.address, user="samples") as client:
        good = client.create_job({**job_config, "samples": {"prompts_uri": "prompts.txt"}}, validate_only=True)
        (check,) = [c for c in good.preflight.checks if c.name == "samples"]
        assert check.message.startswith("2 sample prompt(s)")
        with pytest.raises(Exception) as err:
            client.create_job({**job_config, "samples": {"prompts_uri": "no-such-prompts.txt"}})
    assert err.value.code.name == "FAILED_PRECONDITION" and "no-such-prompts.txt: not found" in str(err.value)
