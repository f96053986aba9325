"""The run-event reducer without a database: a job's row, an in-memory unit of work, and the events of
a run in; the row's changes and the job's events out."""

from __future__ import annotations

import json

from ftlab.config import config_from_dict
from ftlab.v1 import events_pb2, job_pb2
from services.scheduler import run_events, states
from services.scheduler.rows import new_row as _new_row


class Checkpoints:
    def __init__(self):
        self.saved_ = {}

    def saved(self, job_id, name, step, eval_loss, size_bytes):
        self.saved_[name] = step

    def deleted(self, job_id, name):
        self.saved_.pop(name, None)

    def latest(self, job_id):
        return max(self.saved_, key=self.saved_.get) if self.saved_ else ""


class Attempts:
    def __init__(self):
        self.ended_ = []

    def ended(self, job_id, number, outcome, reason):
        self.ended_.append((number, outcome))


class Tx:
    def __init__(self):
        self.checkpoints, self.attempts = Checkpoints(), Attempts()


def _running(policy=None):
    row = _new_row(owner="u", config=config_from_dict({"base_model": "m"}), request_id="", checks=None,
                   retry_policy_json=policy or "{}", failures=0, worker_losses=0, failure_counts_json="{}")
    row.state, row.run_id, row.worker, row.attempt, row.priority = states.STARTING, "run-1", "w1", 1, 0
    return row


def _event(seq, **payload):
    return events_pb2.RunEvent(sequence=seq, **payload)


def test_metrics_and_checkpoints_and_a_stale_event():
    row, tx = _running(), Tx()
    out = run_events.apply(row, tx, "run-1", _event(1, metrics=events_pb2.TrainingMetrics(
        step=3, max_steps=10, loss=1.5, mean_token_accuracy=0.25)), fence_seconds=0)
    assert [e.WhichOneof("payload") for e in out] == ["state_changed", "metrics"] and row.state == states.RUNNING
    saved = events_pb2.CheckpointSaved(name="checkpoint-3", step=3, size_bytes=10)
    run_events.apply(row, tx, "run-1", _event(2, checkpoint_saved=saved), fence_seconds=0)
    assert tx.checkpoints.latest(row.id) == "checkpoint-3"
    assert run_events.apply(row, tx, "run-1", _event(2, checkpoint_saved=saved), fence_seconds=0) == []  # seen
    assert run_events.apply(row, tx, "run-0", _event(9, checkpoint_saved=saved), fence_seconds=0) == []  # stale
    assert json.loads(row.progress_json) == {"step": "3", "max_steps": "10", "loss": 1.5, "mean_token_accuracy": 0.25}


def test_a_failure_the_policy_allows_again_is_requeued_from_the_latest_checkpoint_with_backoff():
    row, tx = _running('{"max_attempts": 3, "backoff_seconds": 5}'), Tx()
    run_events.apply(row, tx, "run-1", _event(1, checkpoint_saved=events_pb2.CheckpointSaved(name="checkpoint-4", step=4)),
                     fence_seconds=0)
    run_events.apply(row, tx, "run-1", _event(2, error=events_pb2.RunError(type="RuntimeError", message="boom")),
                     fence_seconds=0)
    out = run_events.apply(row, tx, "run-1", _event(3, finished=events_pb2.RunFinished(
        outcome=events_pb2.RUN_OUTCOME_FAILED, exit_code=1)), fence_seconds=0)
    assert row.state == states.QUEUED and row.resume_checkpoint == "checkpoint-4" and row.not_before is not None
    assert "retrying in 5s from checkpoint-4" in out[-1].state_changed.reason
    assert tx.attempts.ended_ == [(1, "RUN_OUTCOME_FAILED")]


def test_a_lost_worker_requeues_after_the_fence_and_a_pausing_job_pauses():
    row, tx = _running(), Tx()
    row.state = states.RUNNING
    out = run_events.lost(row, tx, "worker w1 lost", fence_seconds=30)
    assert row.state == states.QUEUED and row.worker == "" and row.worker_losses == 1
    assert out[0].state_changed.to_state == job_pb2.JOB_STATE_QUEUED
    row2, tx2 = _running(), Tx()
    row2.state = states.PAUSING
    run_events.lost(row2, tx2, "worker w1 lost", fence_seconds=30)
    assert row2.state == states.PAUSED


def test_the_childs_events_are_checked_against_the_proto_where_they_are_made():
    import os

    import pytest
    from google.protobuf.json_format import ParseError

    from services.trainer.process import EventSink, read_reports

    read, write = os.pipe()
    sink = EventSink(write)
    sink.emit(error={"type": "OSError", "message": "no file b'\\xff' \udcff", "phase": "PHASE_DATA_PREP"})
    with pytest.raises(ParseError, match="stepp"):
        sink.emit(metrics={"stepp": 1})  # a misspelled field fails in the child, not silently in the trainer
    with pytest.raises(ParseError, match="outcom"):
        sink.result(outcom="RUN_OUTCOME_SUCCEEDED")
    sink.result(outcome="RUN_OUTCOME_SUCCEEDED", output="adapter", train_loss=1.5)
    sink._file.close()
    with os.fdopen(read, "rb") as pipe:
        first, last = read_reports(pipe)
    assert first.event.error.message == "no file b'\\xff' \\udcff"  # the bytes kept, as escapes
    assert first.event.error.phase == events_pb2.PHASE_DATA_PREP and first.event.HasField("time")
    assert (last.result.outcome, last.result.output, last.result.train_loss) == (
        events_pb2.RUN_OUTCOME_SUCCEEDED, "adapter", 1.5)

def test_retry_limits_count_failures_by_the_analyzers_category():
    """One classifier: the retry policy's categories are the analyzer's, not a first cut beside it."""
    row, tx = _running('{"max_attempts": 1, "backoff_seconds": 0, "max_attempts_by_category": {"HOST_OOM": 2}}'), Tx()
    row.state = states.RUNNING
    killed = events_pb2.RunError(type="Signal", message="the training process was killed by SIGKILL", signal=9,
                                 log_tail="ftlab trainer: the kernel's out-of-memory killer ended the run")
    run_events.apply(row, tx, "run-1", _event(1, error=killed), fence_seconds=0)
    out = run_events.apply(row, tx, "run-1", _event(2, finished=events_pb2.RunFinished(
        outcome=events_pb2.RUN_OUTCOME_FAILED, signal=9)), fence_seconds=0)
    assert row.state == states.QUEUED and "HOST_OOM failure 1 of 2 allowed" in out[-1].state_changed.reason
    assert json.loads(row.failure_counts_json) == {"HOST_OOM": 1}
    row, tx = _running('{"max_attempts": 2, "backoff_seconds": 0}'), Tx()
    row.state = states.RUNNING
    missing = events_pb2.RunError(type="FileNotFoundError", message="dataset file not found: d.jsonl",
                                  traceback='  File "<repo>/services/common/datasets.py", line 40, in load_rows\n'
                                            "FileNotFoundError: dataset file not found: d.jsonl")
    run_events.apply(row, tx, "run-1", _event(1, error=missing), fence_seconds=0)
    out = run_events.apply(row, tx, "run-1", _event(2, finished=events_pb2.RunFinished(
        outcome=events_pb2.RUN_OUTCOME_FAILED, exit_code=1)), fence_seconds=0)
    assert "DATASET_NOT_FOUND failure 1 of 2 allowed" in out[-1].state_changed.reason


def test_an_event_without_a_known_payload_is_passed_over():
    """A newer trainer's kind of event (during a rolling upgrade, say) is skipped, not retried forever
    by the follower, which would leave the run's end unrecorded and the job RUNNING."""
    row, tx = _running(), Tx()
    row.state = states.RUNNING
    assert run_events.apply(row, tx, "run-1", _event(1), fence_seconds=0) == []
    assert row.run_cursor == 1 and row.state == states.RUNNING
    assert run_events.apply(row, tx, "run-1", _event(1), fence_seconds=0) == []  # seen
