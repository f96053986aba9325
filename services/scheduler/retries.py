"""Retry, continue and fork: a new job from an ended one, its config changed by the analyzer's
suggestions and the caller's changes (resume_changes.py), from the chosen checkpoint where that is
sound; and the automatic recovery a job's policy allows after its failure is analyzed."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from google.protobuf import json_format

from ftlab.names import state_name
from ftlab.v1 import analyzer_pb2, config_pb2, job_pb2, job_service_pb2
from services.common.auth import Caller
from services.common.checkpoints import best_or_latest, parent_ref
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument
from services.scheduler import convert, resume_changes, states
from services.scheduler.rows import category_of, check_request_id, new_row

if TYPE_CHECKING:
    from services.common.access import Policy
    from services.scheduler.store.models import JobRow
    from services.scheduler.store.repository import JobStore

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger(__name__)


class Retries:
    """For JobManager (its store, access policy, pre-flight and queue)."""

    if TYPE_CHECKING:  # JobManager's (and its Queries')
        store: JobStore
        access: Policy

        async def _db(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R: ...
        async def _row(self, who: Caller, name: str, field: str = "name") -> JobRow: ...
        async def preflight(self, config: config_pb2.TrainingConfig, owner: str,
                            force: bool) -> analyzer_pb2.PreflightResponse | None: ...
        async def _queue(self, row: JobRow, reason: str) -> job_pb2.Job: ...

    async def retry(self, who: Caller, request: job_service_pb2.RetryJobRequest, automatic: bool = False) -> job_pb2.Job:
        """A new job from an ended one: its config with the analyzer's suggestions (if asked) and the
        request's changes, starting from the chosen checkpoint of the old job where that is sound."""
        parent = await self._row(who, request.name)
        if not states.is_final(parent.state):  # failed or cancelled: a retry; succeeded: a continuation or fork
            raise FailedPrecondition(f"only an ended job (failed, cancelled or succeeded) can be retried or "
                                     f"continued; job {parent.id} is {state_name(parent.state)}",
                                     reason="JOB_NOT_ENDED")
        if parent.kind == "JOB_KIND_EVALUATION":
            raise FailedPrecondition(f"job {parent.id} is an evaluation: evaluate again (EvaluateJob) instead",
                                     reason="EVALUATION_NO_RETRY")
        check_request_id(request.request_id)
        old = convert.config_of(parent)
        analysis = json_format.Parse(parent.analysis_json, analyzer_pb2.FailureAnalysis())
        if request.apply_suggestions and not analysis.suggestions:
            raise FailedPrecondition(f"job {parent.id} has no suggestions to apply" + (
                "" if analysis.category else " (it has not been analyzed yet)"), reason="NO_SUGGESTIONS")
        config, patches, skipped = resume_changes.new_config(old, analysis, request.config_changes, request.apply_suggestions)
        mode = resume_changes.resume_mode(patches, old, config)
        chosen = await self._choose_checkpoint(parent.id, request.checkpoint, request.checkpoint_name) \
            if request.checkpoint != job_pb2.CHECKPOINT_SELECTOR_UNSPECIFIED else ""
        self.access.config(config, parent.owner)
        checks = await self.preflight(config, parent.owner, request.force)
        policy = json_format.Parse(parent.retry_policy_json, job_pb2.RetryPolicy())
        if automatic:
            policy.auto_recover[category_of(analysis)] -= 1
        start = parent_ref(parent.id, chosen) if chosen and mode != "none" else ""
        verb = "continuation" if parent.state == states.SUCCEEDED else "retry"
        why = ("automatic recovery" if automatic else f"{verb} by {who.user}") + f" of {convert.job_name(parent.id)}"
        if chosen and mode == "none":
            why += f"; starts from the base model: {chosen} cannot be resumed after these changes"
        elif start:
            why += f"; resumes from {chosen}" + (" (weights only: optimizer and schedule restart)" if mode == "weights" else "")
        if skipped:
            why += "; not applied: " + "; ".join(skipped)
        row = new_row(
            owner=parent.owner, display_name=parent.display_name, template=parent.template, priority=parent.priority,
            config=config, request_id=request.request_id, retry_policy_json=convert.to_json(policy),
            watchdog_json=parent.watchdog_json, checks=checks, parent_id=parent.id, resume_checkpoint=start,
            changes_json=json.dumps([json_format.MessageToDict(p, preserving_proto_field_name=True) for p in patches]),
            automatic=automatic, metadata_json=parent.metadata_json or "{}")  # a retry keeps what its parent was tagged
        return await self._queue(row, why)

    async def auto_recover(self, job_id: str) -> job_pb2.Job | None:
        """After a failed job's analysis: retry it with the suggestions from its latest checkpoint when
        its policy allows for this category and budget is left (a new job; this one keeps its history)."""
        row = await self._db(self.store.get_job, job_id)
        assert row is not None  # jobs are never deleted
        analysis = json_format.Parse(row.analysis_json, analyzer_pb2.FailureAnalysis())
        category = category_of(analysis)
        policy = json_format.Parse(row.retry_policy_json, job_pb2.RetryPolicy())
        if (row.state != states.FAILED or category not in resume_changes.AUTO_RECOVERABLE
                or policy.auto_recover.get(category, 0) <= 0 or not analysis.suggestions):
            return None
        request = job_service_pb2.RetryJobRequest(
            name=row.id, checkpoint=job_pb2.CHECKPOINT_SELECTOR_LATEST, apply_suggestions=True, force=True,
            request_id=f"auto-recover-{row.id}")
        try:
            return await self.retry(Caller(row.owner), request, automatic=True)
        except (FailedPrecondition, InvalidArgument) as exc:
            log.warning("auto-recovery of %s not possible: %s", job_id, exc)
            return None

    async def _choose_checkpoint(self, job_id: str, selector: int, name: str) -> str:
        if selector == job_pb2.CHECKPOINT_SELECTOR_NONE:
            return ""
        checkpoints = convert.to_checkpoints(await self._db(self.store.checkpoints, job_id))
        if selector == job_pb2.CHECKPOINT_SELECTOR_NAMED:
            if not any(c.name == name for c in checkpoints):
                raise InvalidArgument(f"job has no checkpoint {name!r}",
                                      violations=[FieldViolation("checkpoint_name", "no such checkpoint")])
            return name
        return best_or_latest(checkpoints, best=selector == job_pb2.CHECKPOINT_SELECTOR_BEST) or ""

