"""The training libraries' own error messages (services/analyzer/data/library_errors.json, mined from
their sources by scripts/mine_library_errors.py): which library, module and function raise a message,
and the category and phase it means, or UNKNOWN where none fits."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).parent / "data" / "library_errors.json"
_MAX_MESSAGE = 2000  # what is matched of a message: the patterns' wildcards stay cheap


@dataclass(frozen=True)
class Known:
    module: str
    function: str
    category: str
    phase: str


@functools.lru_cache(maxsize=1)
def _index() -> dict[str, list[tuple[re.Pattern[str], Known, int]]]:
    out: dict[str, list[tuple[re.Pattern[str], Known, int]]] = {}
    for e in json.loads(DATA.read_text())["entries"]:
        try:
            rx = re.compile(e["pattern"], re.S)
        except re.error:
            continue
        fixed = len(e["pattern"].replace(".*?", ""))
        out.setdefault(e["exception"], []).append((rx, Known(e["module"], e["function"], e["category"], e["phase"]),
                                                  fixed))
    for rows in out.values():
        rows.sort(key=lambda row: -row[2])  # the most specific message first
    return out


def versions() -> dict[str, str]:
    mined: dict[str, str] = json.loads(DATA.read_text())["versions"]
    return mined


def lookup(exception_type: str, message: str, modules: Collection[str] = frozenset()) -> Known | None:
    """The mined message that `message` is, raised as `exception_type` (any module path); one raised
    in a module of the traceback (`modules`, paths inside site-packages) is preferred."""
    name = exception_type.rsplit(".", 1)[-1]
    text = message[:_MAX_MESSAGE]
    found = [known for rx, known, _ in _index().get(name, ()) if rx.match(text)]
    if not found:
        return None
    return next((k for k in found if k.module in modules), found[0])
