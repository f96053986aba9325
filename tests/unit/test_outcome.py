"""How a run ended, decided from what the trainer saw, without any process."""

from __future__ import annotations

import signal

import pytest
from google.protobuf import json_format

from ftlab.v1 import events_pb2
from services.trainer import gpu, outcome

SUCCEEDED, FAILED, CANCELLED, LOST, PAUSED = ("RUN_OUTCOME_SUCCEEDED", "RUN_OUTCOME_FAILED", "RUN_OUTCOME_CANCELLED",
                                              "RUN_OUTCOME_LOST", "RUN_OUTCOME_PAUSED")


def _as_dict(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


@pytest.mark.parametrize("rc, result, stop_mode, expected", [
    (0, {"outcome": SUCCEEDED, "output": "adapter", "train_loss": 1.5}, "",
     {"exit_code": 0, "outcome": SUCCEEDED, "output": "adapter", "train_loss": 1.5}),
    (0, {"outcome": PAUSED, "resume_checkpoint": "checkpoint-4"}, "pause",
     {"exit_code": 0, "outcome": PAUSED, "resume_checkpoint": "checkpoint-4"}),
    # a worker going away: lost (the job goes on elsewhere), from the checkpoint it saved
    (0, {"outcome": PAUSED, "resume_checkpoint": "checkpoint-4"}, "shutdown",
     {"exit_code": 0, "outcome": LOST, "resume_checkpoint": "checkpoint-4"}),
    (-signal.SIGKILL, None, "shutdown", {"signal": 9, "outcome": LOST}),
    # ...but a run that finished before it went away keeps its success
    (0, {"outcome": SUCCEEDED, "output": "model"}, "shutdown", {"exit_code": 0, "outcome": SUCCEEDED, "output": "model"}),
    (-signal.SIGTERM, None, "cancel", {"signal": 15, "outcome": CANCELLED}),
    (1, None, "", {"exit_code": 1, "outcome": FAILED}),
    (0, None, "", {"exit_code": 0, "outcome": FAILED}),  # exited 0 without a result
    (1, {"outcome": SUCCEEDED}, "", {"exit_code": 1, "outcome": FAILED}),  # a result, then a failing exit
    (-signal.SIGSEGV, None, "pause", {"signal": 11, "outcome": FAILED}),
])
def test_the_finished_event(rc, result, stop_mode, expected):
    told = json_format.ParseDict(result, events_pb2.RunFinished()) if result is not None else None
    assert _as_dict(outcome.finished(rc, told, stop_mode)) == expected


def test_the_error_the_trainer_reports_for_a_run_that_reported_none():
    killed = outcome.error(-9, stuck="", error_seen=False, phase="PHASE_TRAINING",
                           oom_killer="the kernel's out-of-memory killer ended it")
    assert _as_dict(killed) == {"type": "Signal", "phase": "PHASE_TRAINING", "signal": 9,
                                "message": "the training process was killed by SIGKILL: the kernel's out-of-memory "
                                           "killer ended it"}
    assert outcome.error(-99, stuck="", error_seen=False, phase="PHASE_TRAINING").message == \
        "the training process was killed by 99"
    assert _as_dict(outcome.error(3, stuck="", error_seen=False, phase="PHASE_DATA_PREP")) == {
        "type": "ExitCode", "phase": "PHASE_DATA_PREP", "exit_code": 3,
        "message": "the training process exited with code 3 without reporting an error"}
    # the child's own error stands; the watchdog's verdict is told even then
    assert outcome.error(1, stuck="", error_seen=True, phase="PHASE_TRAINING") is None
    assert _as_dict(outcome.error(-9, stuck="no progress for 30s", error_seen=True, phase="PHASE_EVALUATION")) == {
        "type": "Stuck", "message": "no progress for 30s", "phase": "PHASE_EVALUATION", "signal": 9}


def test_gpus_are_allocated_among_runs():
    assert gpu.allocate([], set(), 4) == []  # a CPU machine: the run uses CPU processes
    assert gpu.allocate([0, 1, 2, 3], {1}, 2) == [0, 2]
    with pytest.raises(gpu.NotEnoughGpus, match="asks for 5 GPUs .* has 4") as err:
        gpu.allocate([0, 1, 2, 3], set(), 5)
    assert not err.value.free
    with pytest.raises(gpu.NotEnoughGpus, match="1 of 4 GPUs are free and the job needs 2") as err:
        gpu.allocate([0, 1, 2, 3], {0, 1, 3}, 2)
    assert err.value.free
