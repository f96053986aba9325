"""The job state machine: which transitions are allowed, and what each one records."""

from __future__ import annotations

from ftlab.v1 import job_pb2

S = job_pb2.JobState
QUEUED, STARTING, RUNNING = "JOB_STATE_QUEUED", "JOB_STATE_STARTING", "JOB_STATE_RUNNING"
PAUSING, PAUSED = "JOB_STATE_PAUSING", "JOB_STATE_PAUSED"
CANCELLING, CANCELLED = "JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED"
SUCCEEDED, FAILED = "JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"

FINAL = frozenset({CANCELLED, SUCCEEDED, FAILED})
ACTIVE = frozenset({STARTING, RUNNING, PAUSING, CANCELLING})

ALLOWED: dict[str, frozenset[str]] = {
    QUEUED: frozenset({STARTING, CANCELLED, FAILED}),
    STARTING: frozenset({RUNNING, QUEUED, PAUSING, CANCELLING, CANCELLED, FAILED, SUCCEEDED, PAUSED}),
    RUNNING: frozenset({PAUSING, CANCELLING, SUCCEEDED, FAILED, QUEUED, PAUSED, CANCELLED}),
    PAUSING: frozenset({PAUSED, CANCELLING, SUCCEEDED, FAILED, QUEUED}),
    PAUSED: frozenset({QUEUED, CANCELLED}),
    CANCELLING: frozenset({CANCELLED, FAILED, SUCCEEDED}),
    CANCELLED: frozenset(),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
}


def can_move(current: str, target: str) -> bool:
    return target in ALLOWED.get(current, frozenset())


def is_final(state: str) -> bool:
    return state in FINAL
