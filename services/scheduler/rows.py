"""A job's new row, and the small checks and names the commands share."""

from __future__ import annotations

import uuid

from ftlab.v1 import analyzer_pb2, config_pb2
from services.common.errors import FieldViolation, InvalidArgument
from services.scheduler import convert
from services.scheduler.clock import utcnow
from services.scheduler.store.models import JobRow


def check_request_id(request_id: str) -> None:
    if len(request_id) > 128:
        raise InvalidArgument("request_id too long", violations=[FieldViolation("request_id", "at most 128 characters")])


def check_metadata(metadata: dict[str, str]) -> None:
    """At most 16 pairs, keys of 1 to 64 characters, values up to 512."""
    v = []
    if len(metadata) > 16:
        v.append(FieldViolation("metadata", f"at most 16 pairs, got {len(metadata)}"))
    for key, value in metadata.items():
        if not 1 <= len(key) <= 64:
            v.append(FieldViolation(f"metadata[{key[:64]}]", "keys are 1 to 64 characters"))
        if len(value) > 512:
            v.append(FieldViolation(f"metadata[{key[:64]}]", "values are at most 512 characters"))
    if v:
        raise InvalidArgument(f"{v[0].field}: {v[0].description}", violations=v)


def category_of(analysis: analyzer_pb2.FailureAnalysis) -> str:
    return analyzer_pb2.FailureCategory.Name(analysis.category).removeprefix("FAILURE_CATEGORY_")


def new_row(*, owner: str, config: config_pb2.TrainingConfig, request_id: str,
            checks: analyzer_pb2.PreflightResponse | None, **fields: object) -> JobRow:
    """A new job's row before it is queued: nothing run, nothing recorded yet."""
    now = utcnow()
    defaults = dict(
        id=uuid.uuid4().hex[:16], owner=owner, state="", config_json=convert.to_json(config),
        request_id=request_id or None, create_time=now, update_time=now, last_sequence=0, phase="PHASE_UNSPECIFIED",
        worker="", run_id="", run_cursor=0, attempt=0, progress_json="{}", error_json="{}", analysis_json="{}",
        state_reason="", resume_checkpoint="", preflight_json=convert.to_json(checks) if checks else "{}",
        changes_json="[]", automatic=False, kind="JOB_KIND_TRAINING", evaluation_json="{}", results_json="{}",
        metadata_json="{}",
    )
    return JobRow(**{**defaults, **fields})
