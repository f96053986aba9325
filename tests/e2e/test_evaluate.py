"""Evaluation jobs through the real services, scored by lm-evaluation-harness on local task files: a
model fully fine-tuned on four questions answers them better than its base model (generation by exact match,
after a regex; multiple choice by log-likelihood), with the trained job's own perplexity and token
accuracy beside; the evaluation is a job of its own kind: queued, watched, cancellable, its scores kept,
and shown by `ftlab eval --watch`, `get` and `compare`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ftlab import Client
from ftlab.errors import FtlabError
from ftlab.v1 import job_pb2

pytestmark = pytest.mark.slow
FACTS = {"What color is the sky?": "blue", "What color is grass?": "green", "What color is snow?": "white",
         "What color is a lemon?": "yellow"}


@pytest.fixture(scope="module")
def trained(server, server_home, tmp_path_factory):
    """Full fine-tuning of a tiny model with room to learn (hidden 128, 4 layers): 150 steps take its
    training loss from 6.2 to about 0.2 (a LoRA adapter on random weights this small barely learns)."""
    from services.trainer.tiny import make_tiny_model

    model = make_tiny_model(tmp_path_factory.mktemp("model") / "tiny-128", hidden_size=128, layers=4)
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for q, a in FACTS.items()] * 32
    (server_home / "datasets" / "colors.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with Client(server.address, user="evaluator") as client:
        job = client.create_job({"base_model": str(model), "dataset": {"uri": "colors.jsonl", "eval_split": 0.1},
                                 "adapter": "full", "max_steps": 150, "learning_rate": 3e-4,
                                 "lr_scheduler": "constant", "warmup_ratio": 0, "per_device_train_batch_size": 8,
                                 "gradient_accumulation_steps": 1, "max_seq_length": 64, "save_steps": 75,
                                 "eval_strategy": "no"})
        done = client.wait(job.name, timeout=600)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error
    return done


def tasks(tmp_path):
    generated = tmp_path / "colors.jsonl"
    generated.write_text("".join(json.dumps({"prompt": q, "answer": a, "pattern": "(blue|green|white|yellow|red)"})
                                 + "\n" for q, a in FACTS.items()))
    choices = tmp_path / "colors_choice.jsonl"
    options = ["blue", "green", "white", "yellow"]
    choices.write_text("".join(json.dumps({"prompt": q, "choices": options, "answer": a}) + "\n"
                               for q, a in FACTS.items()))
    return str(generated), str(choices)


def test_the_fine_tuned_model_scores_higher_than_its_base_on_what_it_learned(server, trained, tmp_path):
    with Client(server.address, user="evaluator") as client:
        job = client.evaluate(trained.name, list(tasks(tmp_path)))
        assert job.kind == job_pb2.JOB_KIND_EVALUATION and job.state == job_pb2.JOB_STATE_QUEUED
        assert job.parent == trained.name and [t.name for t in job.evaluation.tasks] == ["colors", "colors_choice"]
        done = client.wait(job.name, timeout=600)
        assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error
        streamed = [e.evaluation for e in client.list_events(job.name) if e.HasField("evaluation")]
    scores = {(s.task, s.metric, s.model): s for s in done.evaluation_results.scores}
    assert len(streamed) == 1 and list(streamed[0].scores) == list(done.evaluation_results.scores)
    assert done.evaluation_results.weights == "model"
    for task, metric in (("colors", "exact_match"), ("colors_choice", "acc")):
        tuned, base = scores[(task, metric, "fine-tuned")], scores[(task, metric, "base")]
        assert tuned.samples == 4 and tuned.value > base.value, (task, tuned.value, base.value)
    assert scores[("colors_choice", "acc", "fine-tuned")].value == 1.0
    tuned_ppl = scores[("eval_split", "perplexity", "fine-tuned")].value
    assert tuned_ppl < scores[("eval_split", "perplexity", "base")].value
    assert 0 <= scores[("eval_split", "token_accuracy", "fine-tuned")].value <= 1


def test_an_evaluation_through_the_cli_and_beside_its_job_in_compare(server, trained, tmp_path):
    env = {**os.environ, "FTLAB_USER": "evaluator"}
    cli = [sys.executable, "-m", "services.cli.main", "--address", server.address]
    generated, _ = tasks(tmp_path)
    shown = subprocess.run([*cli, "eval", trained.id, "--task", generated, "--checkpoint", "checkpoint-75",
                            "--no-builtin", "--watch"], capture_output=True, text=True, env=env, timeout=600)
    assert shown.returncode == 0, shown.stderr
    assert "evaluation of checkpoint-75" in shown.stdout and "exact_match" in shown.stdout, shown.stdout
    compared = subprocess.run([*cli, "compare", trained.id, "--json"], capture_output=True, text=True, env=env,
                              timeout=120)
    (run,) = json.loads(compared.stdout)["runs"]
    assert "colors exact_match" in run["scores"], run


def test_evaluations_refuse_what_they_cannot_do(server, trained, job_config):
    with Client(server.address, user="evaluator") as client:
        for tasks_, field in (([], "evaluation.tasks"), ([{"rows": "not json"}], "evaluation.tasks[0].rows"),
                              ([{"name": "a", "rows": '{"prompt": "x"}'}], "evaluation.tasks[0].rows")):
            with pytest.raises(FtlabError) as err:
                client.evaluate(trained.name, tasks_)
            assert err.value.code.name == "INVALID_ARGUMENT" and field in dict(err.value.field_violations)
        with pytest.raises(FtlabError) as err:
            client.evaluate(trained.name, [{"name": "x", "rows": '{"prompt": "a", "answer": "b"}'}],
                            checkpoint="checkpoint-999")
        assert err.value.code.name == "NOT_FOUND"
        running = client.create_job({**job_config, "max_steps": 100000, "eval_strategy": "no", "save_steps": 0})
        with pytest.raises(FtlabError) as err:  # no final model yet
            client.evaluate(running.name, [{"name": "x", "rows": '{"prompt": "a", "answer": "b"}'}])
        assert err.value.code.name == "FAILED_PRECONDITION"
        client.cancel_job(running.name)
        evaluation = client.evaluate(trained.name, [{"name": "x", "rows": '{"prompt": "a", "answer": "b"}'}])
        with pytest.raises(FtlabError) as err:
            client.retry_job(evaluation.name)
        assert err.value.code.name == "FAILED_PRECONDITION"
        client.cancel_job(evaluation.name)
        assert client.wait(evaluation.name, timeout=120).state == job_pb2.JOB_STATE_CANCELLED
    with Client(server.address, user="someone-else") as other, pytest.raises(FtlabError) as err:
        other.evaluate(trained.name, [{"name": "x", "rows": '{"prompt": "a", "answer": "b"}'}])
    assert err.value.code.name == "NOT_FOUND"
