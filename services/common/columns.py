"""`dataset.columns`: a dataset's own column names mapped onto the ones its format needs, e.g.
{"prompt": "question", "completion": "answer"}; and, for a dataset whose columns fit no format, the
mapping to suggest (from common names for the same thing)."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

# the columns the formats read (services/common/datasets.py): what a mapping's keys may name
STANDARD = ("messages", "conversations", "instruction", "input", "output", "prompt", "completion", "chosen",
            "rejected", "system")

# names people give those columns, most usual first; a suggestion maps a dataset's column onto its
# standard name only when the mapped columns then make up a whole format
_ALIASES: dict[str, tuple[str, ...]] = {
    "messages": ("chat", "dialog", "dialogue", "turns"),
    "conversations": ("conversation", "convo"),
    "instruction": ("task", "directive"),
    "output": ("target", "label"),
    "prompt": ("question", "query", "input_text", "source", "context", "user", "request", "q"),
    "completion": ("answer", "response", "reply", "output_text", "assistant", "a", "generation"),
    "chosen": ("preferred", "accepted", "good", "winner", "better", "positive"),
    "rejected": ("dispreferred", "declined", "bad", "loser", "worse", "negative"),
}
_WHOLE = (("chosen", "rejected"), ("messages",), ("conversations",), ("instruction", "output"),
          ("prompt", "completion"))


def check(columns: dict[str, str]) -> list[str]:
    """What is wrong with a mapping, in words (empty: nothing)."""
    problems = []
    for standard, theirs in columns.items():
        if standard not in STANDARD:
            problems.append(f"{standard!r} is not a column a format reads; one of {', '.join(STANDARD)}")
        if not theirs.strip() or len(theirs) > 200:
            problems.append(f"{standard!r} must name one of the dataset's columns (1 to 200 characters)")
    names = list(columns.values())
    if len(set(names)) != len(names):
        problems.append("each of the dataset's columns may be mapped once")
    return problems


def rename(row: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """`row` with each mapped column under its standard name (a row without it is left for the format's
    own check to name)."""
    if not columns:
        return row
    out = dict(row)
    for standard, theirs in columns.items():
        if theirs in out and theirs != standard:
            out[standard] = out.pop(theirs)
    return out


def guess(present: list[str] | set[str]) -> dict[str, str] | None:
    """A mapping that makes `present` (a dataset's columns) a whole format, from common names; None
    where none does or where a column is already standard (nothing to rename)."""
    lower = {c.lower().strip(): c for c in present}
    for whole in _WHOLE:
        mapping = {}
        for standard in whole:
            if standard in lower:
                continue
            theirs = next((lower[a] for a in _ALIASES.get(standard, ()) if a in lower), None)
            if theirs is None:
                break
            mapping[standard] = theirs
        else:
            if mapping:
                return mapping
    return None


def as_text(columns: dict[str, str]) -> str:
    """A mapping as a value `--set` and `retry --apply-suggestions` read back (JSON, no spaces)."""
    return json.dumps(columns, separators=(",", ":"), ensure_ascii=False)


_LISTED = re.compile(r"from its columns (\[[^\]]*\])|\(its columns: ([^)]*)\)")


def from_message(text: str) -> list[str] | None:
    """The dataset's columns as FineTune Lab's data reader names them in its refusals ("cannot tell
    the dataset format from its columns ['a', 'b']", "... (its columns: a, b)"), or None."""
    m = _LISTED.search(text or "")
    if m is None:
        return None
    if m.group(1):
        try:
            found = ast.literal_eval(m.group(1))
        except (ValueError, SyntaxError):
            return None
        return [str(c) for c in found] if isinstance(found, list) else None
    return [c.strip() for c in m.group(2).split(",") if c.strip()]
