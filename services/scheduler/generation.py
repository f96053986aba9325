"""GenerateText: a job's trained model (or one of its checkpoints) answers a chat on a trainer, streamed
back as it is decoded. The scheduler checks the caller and the request, picks the weights and a
trainer with a free slot (never one a queued training job is waiting for), and relays the trainer's
stream; a caller that goes away cancels it there."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

import grpc

from ftlab.names import state_name
from ftlab.v1 import config_pb2, events_pb2, job_pb2, job_service_pb2, trainer_service_pb2
from services.common.auth import Caller, service_metadata
from services.common.errors import (
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from services.scheduler import states
from services.scheduler.jobs import JobManager
from services.scheduler.registry import Worker, WorkerRegistry
from services.scheduler.run_control import RunControl

log = logging.getLogger(__name__)
ROLES = ("system", "user", "assistant")
DEFAULT_MAX_NEW_TOKENS = 128
_REFUSALS: dict[grpc.StatusCode, type[DomainError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound, grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted, grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument}


def ask_of(request: job_service_pb2.GenerateTextRequest) -> events_pb2.GenerationAsk:
    """The chat and decoding settings of a request, checked; InvalidArgument naming each bad field."""
    v: list[FieldViolation] = []
    messages = list(request.messages) or ([events_pb2.ChatMessage(role="user", content=request.prompt)]
                                          if request.prompt else [])
    if request.messages and request.prompt:
        v.append(FieldViolation("prompt", "give `prompt` or `messages`, not both"))
    if not messages:
        v.append(FieldViolation("messages", "required: a chat, or a `prompt`"))
    if len(messages) > 64:
        v.append(FieldViolation("messages", f"at most 64 messages, got {len(messages)}"))
    for i, m in enumerate(messages):
        if m.role not in ROLES:
            v.append(FieldViolation(f"messages[{i}].role", f"one of {', '.join(ROLES)}, got {m.role!r}"))
        if not m.content.strip() or len(m.content) > 32_000:
            v.append(FieldViolation(f"messages[{i}].content", "1 to 32000 characters"))
    max_new = request.max_new_tokens if request.HasField("max_new_tokens") else DEFAULT_MAX_NEW_TOKENS
    if not 1 <= max_new <= 4096:
        v.append(FieldViolation("max_new_tokens", f"must be in 1..4096, got {max_new}"))
    temperature = request.temperature if request.HasField("temperature") else 0.0
    if not 0 <= temperature <= 10:
        v.append(FieldViolation("temperature", f"must be in 0..10 (0: greedy), got {temperature:g}"))
    seed = request.seed if request.HasField("seed") else 42
    if not 0 <= seed < 1 << 32:
        v.append(FieldViolation("seed", f"must be in 0..4294967295, got {seed}"))
    if v:
        raise InvalidArgument(f"{v[0].field}: {v[0].description}", violations=v)
    return events_pb2.GenerationAsk(messages=messages, max_new_tokens=max_new, temperature=temperature, seed=seed)


def weights_of(job: job_pb2.Job, checkpoints: list[job_pb2.Checkpoint],
               request: job_service_pb2.GenerateTextRequest) -> str:
    """"" for the job's final model, else the checkpoint's name."""
    selector = request.checkpoint
    if selector == job_pb2.CHECKPOINT_SELECTOR_UNSPECIFIED:
        if job.state != job_pb2.JOB_STATE_SUCCEEDED:
            raise FailedPrecondition(
                f"{job.name} has no trained model yet (it is {state_name(job.state)}); name a checkpoint "
                "(best, latest or its name)", reason="NO_FINAL_MODEL")
        return ""
    if selector == job_pb2.CHECKPOINT_SELECTOR_NONE:
        raise InvalidArgument("checkpoint: NONE names no weights", violations=[FieldViolation(
            "checkpoint", "unset (the final model), BEST, LATEST or NAMED")])
    chosen = next((c for c in checkpoints if (selector == job_pb2.CHECKPOINT_SELECTOR_BEST and c.is_best)
                   or (selector == job_pb2.CHECKPOINT_SELECTOR_LATEST and c.is_latest)
                   or (selector == job_pb2.CHECKPOINT_SELECTOR_NAMED and c.name == request.checkpoint_name)), None)
    if chosen is None:
        which = request.checkpoint_name if selector == job_pb2.CHECKPOINT_SELECTOR_NAMED else \
            job_pb2.CheckpointSelector.Name(selector).removeprefix("CHECKPOINT_SELECTOR_").lower()
        raise NotFound(f"{job.name} has no checkpoint {which!r}", reason="CHECKPOINT_NOT_FOUND")
    return chosen.name


class Playground:
    def __init__(self, jobs: JobManager, registry: WorkerRegistry, control: RunControl) -> None:
        self.jobs, self.registry, self.control = jobs, registry, control
        self._served: dict[str, str] = {}  # weights -> the worker that last loaded them

    async def generate(self, who: Caller, request: job_service_pb2.GenerateTextRequest
                       ) -> AsyncIterator[job_service_pb2.GenerateTextResponse]:
        job = await self.jobs.get(who, request.name)  # another user's job is not found, whatever the request
        ask = ask_of(request)
        checkpoint = weights_of(job, await self.jobs.checkpoints(who, request.name), request)
        weights = checkpoint or ("model" if job.config.adapter == config_pb2.ADAPTER_FULL else "adapter")
        key = f"{job.id}/{checkpoint or 'final'}"
        worker = await self._worker(key)
        slot = f"generate-{uuid.uuid4().hex[:12]}"  # the dispatcher starts no run in the slot it holds
        worker.assigned.add(slot)
        try:
            stream = worker.stub().Generate(trainer_service_pb2.GenerateRequest(
                job_id=job.id, config=job.config, checkpoint=checkpoint, ask=ask), metadata=service_metadata())
            async for piece in stream:
                if piece.HasField("done"):
                    self._served[key] = worker.worker_id
                    yield job_service_pb2.GenerateTextResponse(done=piece.done, weights=weights)
                else:
                    yield job_service_pb2.GenerateTextResponse(text=piece.text)
        except grpc.aio.AioRpcError as exc:
            kind = _REFUSALS.get(exc.code())
            if kind is not None:
                raise kind(exc.details() or "", reason="GENERATION_REFUSED") from None
            raise Unavailable(f"the trainer {worker.worker_id} did not answer: {exc.code().name}") from None
        finally:
            worker.assigned.discard(slot)
            self.control.wake()

    async def _worker(self, key: str) -> Worker:
        """The trainer to answer on: the one that has these weights loaded, else one with a free slot,
        as long as no queued training job is waiting for the free slots."""
        alive = [w for w in self.registry.alive() if w.address and not w.unreachable]
        if not alive:
            raise Unavailable("no trainer is registered: start one (ftlab serve, or python -m services.trainer)")
        free = [w for w in alive if len(w.assigned) < w.max_runs]
        queued = (await self.jobs.state_counts()).get(states.QUEUED, 0)
        if queued and sum(w.max_runs - len(w.assigned) for w in free) <= queued:
            raise ResourceExhausted(f"{queued} queued training job(s) wait for the trainers' free slots; ask again "
                                    "once they have started", reason="TRAINERS_PROMISED")
        if not free:
            raise ResourceExhausted("every trainer slot is training or answering; ask again later", reason="WORKER_FULL")
        served = self._served.get(key)
        return next((w for w in free if w.worker_id == served), free[0])
