"""Evaluation jobs: a trained job's weights (its final model or a checkpoint) scored on tasks by
lm-evaluation-harness, with the base model beside them, as a job of its own kind. It is queued,
dispatched, watched, cancelled and kept like a training job; its run is the trainer's evaluation
child (services/trainer/eval_child.py), and its scores are kept on the job."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from ftlab.names import state_name
from ftlab.v1 import job_pb2, job_service_pb2
from services.common.auth import Caller
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from services.scheduler import convert, states
from services.scheduler.rows import check_request_id, new_row

if TYPE_CHECKING:
    from services.common.access import Policy
    from services.scheduler.store.models import JobRow
    from services.scheduler.store.repository import JobStore

P = ParamSpec("P")
R = TypeVar("R")
MAX_TASKS = 16
MAX_ROWS_TEXT = 2 << 20  # inline rows of one task, in bytes
KINDS = {"TRAINING": "JOB_KIND_TRAINING", "EVALUATION": "JOB_KIND_EVALUATION"}


def check_tasks(evaluation: job_pb2.EvaluationConfig) -> None:
    """InvalidArgument naming each bad field of the tasks and settings."""
    v: list[FieldViolation] = []
    if not evaluation.tasks:
        v.append(FieldViolation("evaluation.tasks", "at least one task: rows, a file, or a harness task's name"))
    if len(evaluation.tasks) > MAX_TASKS:
        v.append(FieldViolation("evaluation.tasks", f"at most {MAX_TASKS} tasks, got {len(evaluation.tasks)}"))
    names = []
    for i, task in enumerate(evaluation.tasks):
        field = f"evaluation.tasks[{i}]"
        if bool(task.rows) + bool(task.uri) > 1:
            v.append(FieldViolation(field, "give `rows` or `uri`, not both"))
        if not (task.rows or task.uri or task.name):
            v.append(FieldViolation(field, "give `rows`, `uri`, or the `name` of a harness task"))
        if len(task.rows.encode()) > MAX_ROWS_TEXT:
            v.append(FieldViolation(f"{field}.rows", f"at most {MAX_ROWS_TEXT >> 20} MiB inline; put bigger tasks "
                                                      "in a file on the server (`uri`)"))
        for number, line in enumerate(task.rows.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                v.append(FieldViolation(f"{field}.rows", f"line {number} is not JSON"))
                break
            if not (isinstance(row, dict) and isinstance(row.get("prompt"), str) and "answer" in row):
                v.append(FieldViolation(f"{field}.rows", f"line {number} needs `prompt` and `answer` (and `choices` "
                                                          "for multiple choice)"))
                break
        name = task.name or (task.uri.rsplit("/", 1)[-1].rsplit(".", 1)[0] if task.uri else f"task{i + 1}")
        if not name.replace("_", "").replace("-", "").isalnum() or len(name) > 64:
            v.append(FieldViolation(f"{field}.name", "letters, digits, - and _ (at most 64)"))
        if name in names:
            v.append(FieldViolation(f"{field}.name", f"{name!r} names two tasks"))
        names.append(name)
    if not 0 <= evaluation.limit <= 10**7:
        v.append(FieldViolation("evaluation.limit", f"must be 0 (all rows) or positive, got {evaluation.limit}"))
    if evaluation.HasField("max_new_tokens") and not 1 <= evaluation.max_new_tokens <= 4096:
        v.append(FieldViolation("evaluation.max_new_tokens", f"must be in 1..4096, got {evaluation.max_new_tokens}"))
    if v:
        raise InvalidArgument(f"invalid evaluation: {v[0].field}: {v[0].description}", violations=v)


class Evaluations:
    """For JobManager (its store, access policy and queue)."""

    if TYPE_CHECKING:  # JobManager's (and its Queries')
        store: JobStore
        access: Policy

        async def _db(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R: ...
        async def _row(self, who: Caller, name: str, field: str = "name") -> JobRow: ...
        async def _queue(self, row: JobRow, reason: str) -> job_pb2.Job: ...

    async def evaluate(self, who: Caller, request: job_service_pb2.EvaluateJobRequest) -> job_pb2.Job:
        """Queue an evaluation of a trained job's weights."""
        check_request_id(request.request_id)
        evaluation = job_pb2.EvaluationConfig()
        evaluation.CopyFrom(request.evaluation)
        target = await self._row(who, evaluation.job, "evaluation.job")  # another user's is not found
        check_tasks(evaluation)
        if (target.kind or KINDS["TRAINING"]) != KINDS["TRAINING"]:
            raise InvalidArgument("an evaluation evaluates a training job", violations=[
                FieldViolation("evaluation.job", f"job {target.id} is an evaluation")])
        checkpoint = await self._weights(target, evaluation)
        config = convert.config_of(target)
        for i, task in enumerate(evaluation.tasks):  # a file the owner may read, as a dataset
            if task.uri:
                self.access.dataset(task.uri, f"evaluation.tasks[{i}].uri", None if who.admin else who.user)
        evaluation.job = convert.job_name(target.id)
        if checkpoint:  # resolved now: a later checkpoint of the job does not change what this evaluates
            evaluation.checkpoint, evaluation.checkpoint_name = job_pb2.CHECKPOINT_SELECTOR_NAMED, checkpoint
        row = new_row(owner=who.user, display_name=request.display_name[:256] or f"evaluate {target.id}",
                      template=target.template, priority=request.priority, config=config,
                      request_id=request.request_id, retry_policy_json="{}", watchdog_json="{}", checks=None,
                      kind=KINDS["EVALUATION"], evaluation_json=convert.to_json(evaluation), parent_id=target.id)
        return await self._queue(row, f"evaluation of {evaluation.job} ({checkpoint or 'its final model'}) "
                                      f"created by {who.user}")

    async def _weights(self, target: JobRow, evaluation: job_pb2.EvaluationConfig) -> str:
        """The checkpoint to evaluate ("" for the final model), which must exist."""
        selector = evaluation.checkpoint
        if selector in (job_pb2.CHECKPOINT_SELECTOR_UNSPECIFIED, job_pb2.CHECKPOINT_SELECTOR_NONE):
            if target.state != states.SUCCEEDED:
                raise FailedPrecondition(f"job {target.id} has no final model (it is {state_name(target.state)}); "
                                         "evaluate one of its checkpoints", reason="NO_FINAL_MODEL")
            return ""
        known = convert.to_checkpoints(await self._db(self.store.checkpoints, target.id))
        chosen = next((c for c in known if (selector == job_pb2.CHECKPOINT_SELECTOR_BEST and c.is_best)
                       or (selector == job_pb2.CHECKPOINT_SELECTOR_LATEST and c.is_latest)
                       or (selector == job_pb2.CHECKPOINT_SELECTOR_NAMED and c.name == evaluation.checkpoint_name)),
                      None)
        if chosen is None:
            raise NotFound(f"job {target.id} has no such checkpoint", reason="CHECKPOINT_NOT_FOUND")
        return chosen.name
