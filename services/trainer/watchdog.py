"""Limits after which a run that makes no progress counts as stuck.

Progress is any event from the run. The allowance depends on the phase: loading (startup, model
load, data prep), training (the larger of a floor and a multiple of the median time between
training reports so far), evaluation, and checkpoint saving; each can be set per job.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from ftlab.v1 import events_pb2, job_pb2

STEP_FLOOR_SECONDS = 600.0
STEP_MEDIAN_MULTIPLE = 20.0
MODEL_LOAD_SECONDS = 1800.0
EVAL_SECONDS = 1800.0
CHECKPOINT_SECONDS = 900.0


@dataclass
class Limits:
    step: float | None = None  # None: the adaptive default
    model_load: float = MODEL_LOAD_SECONDS
    evaluation: float = EVAL_SECONDS
    checkpoint: float = CHECKPOINT_SECONDS

    @classmethod
    def from_proto(cls, w: job_pb2.WatchdogConfig) -> "Limits":
        return cls(
            step=w.step_timeout_seconds if w.HasField("step_timeout_seconds") else None,
            model_load=w.model_load_timeout_seconds if w.HasField("model_load_timeout_seconds") else MODEL_LOAD_SECONDS,
            evaluation=w.eval_timeout_seconds if w.HasField("eval_timeout_seconds") else EVAL_SECONDS,
            checkpoint=w.checkpoint_timeout_seconds if w.HasField("checkpoint_timeout_seconds") else CHECKPOINT_SECONDS,
        )


@dataclass
class Progress:
    """What the watchdog knows of one run."""

    limits: Limits
    last_event: float
    phase: events_pb2.Phase.ValueType = events_pb2.PHASE_STARTUP
    _report_times: list[float] = field(default_factory=list)
    _intervals: list[float] = field(default_factory=list)

    def saw(self, event: events_pb2.RunEvent, now: float) -> None:
        self.last_event = now
        kind = event.WhichOneof("payload")
        if kind == "phase_changed":
            self.phase = event.phase_changed.phase
        elif kind == "metrics":
            if self._report_times:
                self._intervals.append(now - self._report_times[-1])
            self._report_times = [now]

    def limit(self) -> float:
        """Seconds of silence allowed in the current phase."""
        if self.phase in (events_pb2.PHASE_STARTUP, events_pb2.PHASE_MODEL_LOAD, events_pb2.PHASE_DATA_PREP):
            return self.limits.model_load
        if self.phase == events_pb2.PHASE_EVALUATION:
            return self.limits.evaluation
        if self.phase == events_pb2.PHASE_CHECKPOINT_SAVE:
            return self.limits.checkpoint
        if self.limits.step is not None:
            return self.limits.step
        median = statistics.median(self._intervals) if self._intervals else 0.0
        return max(STEP_FLOOR_SECONDS, STEP_MEDIAN_MULTIPLE * median)

    def overdue(self, now: float) -> float | None:
        """Seconds of silence when past the limit, else None."""
        silent = now - self.last_event
        return silent if silent > self.limit() else None
