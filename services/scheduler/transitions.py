"""A job's move from one state to another, checked against the state machine (states.py), as the
event that records it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftlab.v1 import job_pb2
from services.scheduler import states
from services.scheduler.clock import utcnow

if TYPE_CHECKING:
    from services.scheduler.store.models import JobRow


def state_event(row: JobRow, to: str, reason: str) -> job_pb2.JobEvent:
    """Move `row` to state `to` and return the event that records it."""
    if row.state and not states.can_move(row.state, to):
        raise RuntimeError(f"illegal transition of job {row.id}: {row.state} -> {to}")
    event = job_pb2.JobEvent(state_changed=job_pb2.StateChanged(
        from_state=job_pb2.JobState.Value(row.state) if row.state else job_pb2.JOB_STATE_UNSPECIFIED,
        to_state=job_pb2.JobState.Value(to), reason=reason))
    row.state, row.state_reason = to, reason
    now = utcnow()
    if to == states.RUNNING and row.start_time is None:
        row.start_time = now
    if states.is_final(to):
        row.end_time = now
    return event
