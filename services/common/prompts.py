"""A job's sample prompts (TrainingConfig.samples), read as chats: by the training child, which
answers them, and by pre-flight, which checks that they can be read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Chat = list[dict[str, str]]
MAX_PROMPTS = 16


def load_prompts(samples: dict[str, Any], datasets_folder: str = "") -> list[Chat]:
    """The job's prompts as chats: `prompts` (user messages), then the rows of `prompts_uri` (JSONL of
    `messages` or `prompt`, or plain text, a prompt a line), at most MAX_PROMPTS."""
    chats: list[Chat] = [[{"role": "user", "content": p}] for p in samples.get("prompts") or []]
    uri = samples.get("prompts_uri") or ""
    if uri:
        path = Path(uri) if Path(uri).is_absolute() or not datasets_folder else Path(datasets_folder) / uri
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            if path.suffix.lower() != ".jsonl":
                chats.append([{"role": "user", "content": line.strip()}])
                continue
            row = json.loads(line)
            if isinstance(row, dict) and isinstance(row.get("messages"), list):
                chats.append([{"role": str(m["role"]), "content": str(m["content"])} for m in row["messages"]])
            elif isinstance(row, dict) and isinstance(row.get("prompt"), str):
                chats.append([{"role": "user", "content": row["prompt"]}])
            else:
                raise ValueError(f"samples.prompts_uri: line {number} of {path.name} has neither `messages` nor "
                                 "`prompt`")
    return chats[:MAX_PROMPTS]
