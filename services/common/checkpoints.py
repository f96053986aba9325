"""How a job names the checkpoint a run starts from: its own ("checkpoint-N"), or its parent's
("jobs/{id}/checkpoints/checkpoint-N", for a retry). Nothing else resolves."""

from __future__ import annotations

import re

_PARENT = re.compile(r"^jobs/([0-9a-f]{16})/checkpoints/(checkpoint-\d+)$")
_OWN = re.compile(r"^checkpoint-\d+$")


def parent_ref(parent_id: str, name: str) -> str:
    return f"jobs/{parent_id}/checkpoints/{name}"


def split_parent_ref(ref: str) -> tuple[str, str] | None:
    """(job id, checkpoint name) of a parent's checkpoint, or None."""
    m = _PARENT.match(ref)
    return (m.group(1), m.group(2)) if m else None


def is_own(ref: str) -> bool:
    return bool(_OWN.match(ref))
