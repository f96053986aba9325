"""One row of each dataset format in TRL's shape: chat `messages`, ShareGPT `conversations`,
alpaca, prompt/completion and preference pairs (OpenAI's DPO rows too). Pure functions; a row that
does not fit raises KeyError (a column it lacks), TypeError or ValueError, which
services/common/datasets.py turns into a DatasetError naming the row."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "system": "system", "bot": "assistant", "model": "assistant"}


def _messages(row: dict[str, Any]) -> dict[str, Any]:
    messages = _listish(row["messages"])
    if not isinstance(messages, list) or not messages:
        raise ValueError("`messages` must be a non-empty list")
    return {"messages": [_message(m["role"], m["content"]) for m in messages]}


def _sharegpt(row: dict[str, Any]) -> dict[str, Any]:
    turns = _listish(row["conversations"])
    if not isinstance(turns, list) or not turns:
        raise ValueError("`conversations` must be a non-empty list")
    return {"messages": [_message(_SHAREGPT_ROLES[t["from"]], t["value"]) for t in turns]}


def _alpaca(row: dict[str, Any]) -> dict[str, Any]:
    instruction, extra = _text(row["instruction"]), row.get("input") or ""
    prompt = f"{instruction}\n\n{_text(extra)}" if extra else instruction
    return {
        "prompt": [_message("user", prompt)],
        "completion": [_message("assistant", row["output"])],
    }


def _prompt_completion(row: dict[str, Any]) -> dict[str, Any]:
    return {"prompt": _turns(row["prompt"], "user"), "completion": _turns(row["completion"], "assistant")}


def _preference(row: dict[str, Any]) -> dict[str, Any]:
    if "preferred_output" in row:  # OpenAI's DPO rows: {input: {messages}, preferred_output, non_preferred_output}
        row = {"prompt": (row.get("input") or {}).get("messages") or "", "chosen": row["preferred_output"],
               "rejected": row["non_preferred_output"]}
    out: dict[str, Any] = {}
    for key in ("chosen", "rejected"):
        out[key] = _turns(row[key], "assistant")
    if row.get("prompt"):
        out["prompt"] = _turns(row["prompt"], "user")
    return out


def _turns(value: Any, role: str) -> list[dict[str, str]]:
    """Plain text as one message of `role`, or a list of messages (also as JSON text, as CSV holds it)."""
    value = _listish(value)
    if isinstance(value, list):
        if not value:
            raise ValueError("an empty list of messages")
        return [_message(m["role"], m["content"]) for m in value]
    return [_message(role, value)]


def _listish(value: Any) -> Any:
    """A list stored as JSON text (a CSV or Parquet string column) becomes the list it holds."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return value
        return parsed if isinstance(parsed, list) else value
    if value is not None and not isinstance(value, (str, list, dict)) and hasattr(value, "tolist"):
        return value.tolist()  # numpy arrays from Parquet
    return value


def _message(role: Any, content: Any) -> dict[str, str]:
    if role not in ("system", "user", "assistant", "tool"):
        raise ValueError(f"unknown role {role!r}")
    return {"role": role, "content": _text(content)}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text holds a lone surrogate (\\ud800-\\udfff), which is not Unicode") from None
    return value


CONVERTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "messages": _messages,
    "sharegpt": _sharegpt,
    "alpaca": _alpaca,
    "prompt_completion": _prompt_completion,
    "preference": _preference,
}
