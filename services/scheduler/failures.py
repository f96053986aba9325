"""The failure class of a failed attempt, for per-category retry limits.

A first cut from what the trainer recorded; the analyzer refines categories from the log.
"""

from __future__ import annotations

import signal

from ftlab.v1 import job_pb2


def failure_class(error: job_pb2.JobError) -> str:
    """A FailureCategory name without its prefix."""
    kind = error.type
    if kind == "Stuck":
        return "STUCK"
    if kind == "Signal":
        return "KILLED_BY_SIGNAL"
    if kind.endswith("OutOfMemoryError") or "CUDA out of memory" in error.message:
        return "CUDA_OOM"
    if kind == "MemoryError" or (error.HasField("signal") and error.signal == signal.SIGKILL):
        return "HOST_OOM"
    return "UNKNOWN"
