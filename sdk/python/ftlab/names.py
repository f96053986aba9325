"""Enum values as a person reads them: `state_name(job.state)` is "succeeded", not 8 or
JOB_STATE_SUCCEEDED; `phase_name(job.phase)` is "data prep"; `category_name(...)` is "DATASET_FORMAT"
without its prefix. Each also takes the name itself."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftlab.v1 import analyzer_pb2, events_pb2, job_pb2

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper


def _name(enum: _EnumTypeWrapper[Any], prefix: str, value: int | str) -> str:  # Any: each enum's own int type
    name = value if isinstance(value, str) else enum.Name(value)
    return name.removeprefix(prefix)


def state_name(state: int | str) -> str:
    """"queued", "running", "succeeded", ..."""
    return _name(job_pb2.JobState, "JOB_STATE_", state).lower()


def phase_name(phase: int | str) -> str:
    """"startup", "model load", "data prep", "training", "evaluation", "checkpoint save"."""
    return _name(events_pb2.Phase, "PHASE_", phase).lower().replace("_", " ")


def category_name(category: int | str) -> str:
    """The failure category: "CUDA_OOM", "DATASET_FORMAT", ..."""
    return _name(analyzer_pb2.FailureCategory, "FAILURE_CATEGORY_", category)
