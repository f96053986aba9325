"""How a job names the checkpoint a run starts from: its own ("checkpoint-N"), or its parent's
("jobs/{id}/checkpoints/checkpoint-N", for a retry). Nothing else resolves."""

from __future__ import annotations

import json
import re
from pathlib import Path

_PARENT = re.compile(r"^jobs/([0-9a-f]{16})/checkpoints/(checkpoint-\d+)$")
_OWN = re.compile(r"^checkpoint-\d+$")


def parent_ref(parent_id: str, name: str) -> str:
    return f"jobs/{parent_id}/checkpoints/{name}"


def split_parent_ref(ref: str) -> tuple[str, str] | None:
    """(job id, checkpoint name) of a parent's checkpoint, or None."""
    m = _PARENT.match(ref)
    return (m.group(1), m.group(2)) if m else None


def best_or_latest(checkpoints, best: bool) -> str | None:
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
