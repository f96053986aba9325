"""Requests the client builds from plain arguments: an evaluation, a generation, an upload's stream
(no gRPC here: messages only)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ftlab.v1 import artifact_service_pb2, events_pb2, job_pb2, job_service_pb2

_SELECTORS = {"": job_pb2.CHECKPOINT_SELECTOR_UNSPECIFIED, "best": job_pb2.CHECKPOINT_SELECTOR_BEST,
              "latest": job_pb2.CHECKPOINT_SELECTOR_LATEST}


def checkpoint_selector(checkpoint: str, *, none: bool = False) -> tuple[job_pb2.CheckpointSelector.ValueType, str]:
    """("", "best", "latest" or a checkpoint's name; with `none`, "none" too: a retry from no
    checkpoint) as a selector and, for a name, the name."""
    selectors = {**_SELECTORS, "none": job_pb2.CHECKPOINT_SELECTOR_NONE} if none else _SELECTORS
    selector = selectors.get(checkpoint, job_pb2.CHECKPOINT_SELECTOR_NAMED)
    return selector, checkpoint if selector == job_pb2.CHECKPOINT_SELECTOR_NAMED else ""


def evaluation_request(name: str, tasks: Sequence[str | dict[str, str]], *, checkpoint: str, compare_base: bool,
                       limit: int, max_new_tokens: int | None, builtin: bool, display_name: str, priority: int,
                       request_id: str) -> job_service_pb2.EvaluateJobRequest:
    """Each task a local .jsonl file (sent inline), a task definition on the server (.yaml, by path),
    one of lm-evaluation-harness's tasks by name, or a dict of EvaluationTask's fields."""
    evaluation = job_pb2.EvaluationConfig(job=name, compare_base=compare_base, limit=limit, builtin=builtin)
    if max_new_tokens is not None:
        evaluation.max_new_tokens = max_new_tokens
    evaluation.checkpoint, evaluation.checkpoint_name = checkpoint_selector(checkpoint)
    for task in tasks:
        if isinstance(task, dict):
            evaluation.tasks.add(**task)
        elif task.endswith(".jsonl"):
            evaluation.tasks.add(name=Path(task).stem, rows=Path(task).read_text(encoding="utf-8"))
        elif task.endswith((".yaml", ".yml")):
            evaluation.tasks.add(uri=os.path.abspath(os.path.expanduser(task)))
        else:
            evaluation.tasks.add(name=task)
    return job_service_pb2.EvaluateJobRequest(evaluation=evaluation, display_name=display_name, priority=priority,
                                              request_id=request_id)


def generate_request(name: str, prompt: str, messages: Sequence[dict[str, str]], checkpoint: str, *,
                     max_new_tokens: int | None, temperature: float | None,
                     seed: int | None) -> job_service_pb2.GenerateTextRequest:
    request = job_service_pb2.GenerateTextRequest(
        name=name, prompt=prompt, messages=[events_pb2.ChatMessage(**m) for m in messages])
    request.checkpoint, request.checkpoint_name = checkpoint_selector(checkpoint)
    if max_new_tokens is not None:
        request.max_new_tokens = max_new_tokens
    if temperature is not None:
        request.temperature = temperature
    if seed is not None:
        request.seed = seed
    return request


def upload_messages(path: Path, chunk_bytes: int, progress: Callable[[int, int], object] | None
                    ) -> Iterator[artifact_service_pb2.UploadDatasetRequest]:
    """The upload's stream: its metadata (name, size, sha256: read now, so a missing file fails here),
    then the file in chunks."""
    size = path.stat().st_size
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            sha.update(block)
    metadata = artifact_service_pb2.UploadMetadata(filename=path.name, size_bytes=size, sha256=sha.hexdigest())

    def messages() -> Iterator[artifact_service_pb2.UploadDatasetRequest]:
        yield artifact_service_pb2.UploadDatasetRequest(metadata=metadata)
        sent = 0
        with open(path, "rb") as f:
            while block := f.read(chunk_bytes):
                sent += len(block)
                if progress:
                    progress(sent, size)
                yield artifact_service_pb2.UploadDatasetRequest(chunk=block)

    return messages()
