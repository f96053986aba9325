"""How a job names the checkpoint a run starts from: its own ("checkpoint-N"), or its parent's
("jobs/{id}/checkpoints/checkpoint-N", for a retry). Nothing else resolves."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

_PARENT = re.compile(r"^jobs/([0-9a-f]{16})/checkpoints/(checkpoint-\d+)$")
_OWN = re.compile(r"^checkpoint-\d+$")


def parent_ref(parent_id: str, name: str) -> str:
    return f"jobs/{parent_id}/checkpoints/{name}"


def split_parent_ref(ref: str) -> tuple[str, str] | None:
    """(job id, checkpoint name) of a parent's checkpoint, or None."""
    m = _PARENT.match(ref)
    return (m.group(1), m.group(2)) if m else None


class Ranked(Protocol):
    """A checkpoint as a message lists it (job_pb2.Checkpoint, artifact_service_pb2.Artifact)."""

    @property
    def name(self) -> str: ...
    @property
    def is_best(self) -> bool: ...
    @property
    def is_latest(self) -> bool: ...


def best_or_latest(checkpoints: Iterable[Ranked], best: bool) -> str | None:
    """The name of the best (by eval loss) or the latest of `checkpoints` (messages with name, is_best
    and is_latest); where none was evaluated there is no best, and the latest stands in for it."""
    latest = next((c.name for c in checkpoints if c.is_latest), None)
    return next((c.name for c in checkpoints if c.is_best), latest) if best else latest


def is_own(ref: str) -> bool:
    return bool(_OWN.match(ref))


def step_of(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def eval_loss(checkpoint: Path) -> float | None:
    """The evaluation loss at a checkpoint's step, from its own trainer_state.json (None if not evaluated)."""
    state = checkpoint / "trainer_state.json"
    if state.is_symlink():  # never read through a link planted in a checkpoint
        return None
    try:
        history = json.loads(state.read_text()).get("log_history", [])
    except (OSError, ValueError, AttributeError):
        return None
    step = step_of(checkpoint.name)
    losses = [h["eval_loss"] for h in history if h.get("step") == step and "eval_loss" in h]
    return float(losses[-1]) if losses else None


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be resumed from, said plainly (transformers says "Can't find a
    valid checkpoint" for a missing folder, a file and a folder without weights alike)."""


_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin", "model.safetensors", "model.safetensors.index.json",
            "pytorch_model.bin", "pytorch_model.bin.index.json")


def check_resumable(checkpoint: Path) -> None:
    """Raise CheckpointError naming what is wrong with `checkpoint` before a run resumes from it: not
    there, not a folder, or a folder that holds files but no weights. An empty folder is left to the
    library, which says it is not a valid checkpoint."""
    if not checkpoint.exists() and not checkpoint.is_symlink():
        raise CheckpointError(f"checkpoint {checkpoint.name} was not found: it does not exist")
    if not checkpoint.is_dir():
        raise CheckpointError(f"checkpoint {checkpoint.name} was not found: a file stands where its folder should be")
    files = sorted(p.name for p in checkpoint.iterdir())
    if files and not any(name in files for name in _WEIGHTS):
        raise CheckpointError(f"checkpoint {checkpoint.name} is damaged: it holds {', '.join(files[:8])}"
                              f"{' ...' if len(files) > 8 else ''} but no model or adapter weights")
