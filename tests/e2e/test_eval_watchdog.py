"""A long evaluation is not a stuck one: evaluation reports its progress (batches done of all), the
watchdog takes each report as progress, so an evaluation that runs longer than its allowance but
keeps going finishes, while one beside it that stops making progress is killed as STUCK."""

from __future__ import annotations

import os
import signal

import pytest

from ftlab import Client
from ftlab.v1 import analyzer_pb2, events_pb2, job_pb2
from tests.helpers import start_server, training_children, wait_for, write_chat_dataset

pytestmark = pytest.mark.slow
ALLOWANCE = 2.0  # seconds of silence an evaluation is allowed
EVAL_ROWS = 600  # of about 250 tokens each: an evaluation of several times the allowance on these CPUs


def test_a_long_evaluation_finishes_and_a_stuck_one_beside_it_is_stopped(tmp_path, tiny_model):
    home = tmp_path / "home"
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=32)
    write_chat_dataset(home / "datasets" / "eval.jsonl", rows=EVAL_ROWS, seed=1, padding=60)
    server = start_server(home, args=["--max-runs", "2", "--cpu-threads", "1"], name="evals")
    config = {"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl", "eval_uri": "eval.jsonl"},
              "max_steps": 2, "per_device_train_batch_size": 2, "per_device_eval_batch_size": 1,
              "max_seq_length": 320, "eval_strategy": "steps", "eval_steps": 2, "save_steps": 0, "logging_steps": 1}
    watchdog = {"eval_timeout_seconds": ALLOWANCE}
    try:
        with Client(server.address) as client:
            long_job = client.create_job(config, watchdog=watchdog)
            stuck_job = client.create_job(config, watchdog=watchdog)
            for update in client.watch(stuck_job.name):  # stop the second one once it evaluates
                e = update.event
                if e.HasField("eval_progress"):
                    (pid,) = [p for p, job, _ in training_children() if job == stuck_job.id]
                    os.kill(pid, signal.SIGSTOP)  # as a hung data loader or collective would leave it
                    break
            stuck = client.wait(stuck_job.name, timeout=120)
            done = client.wait(long_job.name, timeout=300)
            events = client.list_events(long_job.name)
            wait_for(lambda: client.get_job(stuck_job.name).analysis.category, timeout=60, what="the analysis")
            analysis = client.get_job(stuck_job.name).analysis
    finally:
        server.stop()
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.state_reason
    (evaluation,) = [e.eval for e in events if e.HasField("eval")]
    print(f"evaluation of {EVAL_ROWS} batches: {evaluation.runtime_seconds:.1f}s, allowance {ALLOWANCE:g}s of silence")
    assert evaluation.runtime_seconds > ALLOWANCE  # longer than its allowance (about 3x on CI), and never killed
    progress = [e.eval_progress for e in events if e.HasField("eval_progress")]
    assert progress[0].batches_done == 1 and progress[-1].batches_done == progress[-1].batches_total == EVAL_ROWS
    assert stuck.state == job_pb2.JOB_STATE_FAILED and stuck.error.type == "Stuck"
    assert stuck.error.phase == events_pb2.PHASE_EVALUATION and "evaluation" in stuck.error.message
    assert analysis.category == analyzer_pb2.FAILURE_CATEGORY_STUCK
