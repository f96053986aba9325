"""Read a dataset file and normalize its rows into the shapes TRL trains on.

Formats in: chat `messages`, ShareGPT `conversations`, alpaca (instruction/input/output),
prompt/completion, and preference pairs (chosen/rejected, optionally with prompt). Out: TRL's
conversational `messages`, or `prompt`/`completion`, or `prompt`/`chosen`/`rejected`.
Pure functions over rows; only `load_rows` touches the file system.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from services.common.columns import rename

FORMATS = ("messages", "sharegpt", "alpaca", "prompt_completion", "preference")
_READERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "system": "system", "bot": "assistant", "model": "assistant"}


MAX_FIELD_BYTES = 64 << 20  # one CSV field (Python's csv refuses fields over 128 KiB unless told)
_EXTRA = "\x00extra"  # where csv puts the values of a row longer than its header


class DatasetError(ValueError):
    """The dataset cannot be used; the message says why and how to fix it."""


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read every row of a JSONL, JSON, CSV or Parquet file."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"dataset file not found: {p}")
    kind = _READERS.get(p.suffix.lower())
    if kind is None:
        raise DatasetError(f"unsupported dataset file type {p.suffix!r}; use one of {sorted(_READERS)}")
    try:
        if kind == "json":
            rows = _read_json(p)
        elif kind == "csv":
            rows = _read_csv(p)
        else:
            rows = _read_parquet(p)
    except RecursionError:
        raise DatasetError(f"{p.name} nests its JSON too deeply to read") from None
    if not rows:
        raise DatasetError(f"dataset {p.name} has no rows")
    return rows


def _read_csv(p: Path) -> list[dict[str, Any]]:
    import csv

    csv.field_size_limit(MAX_FIELD_BYTES)
    rows = []
    with open(p, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, restkey=_EXTRA)
        try:
            for row in reader:
                if _EXTRA in row:
                    raise DatasetError(f"{p.name} line {reader.line_num}: more fields than the header has")
                rows.append(dict(row))
        except csv.Error as exc:
            raise DatasetError(f"{p.name} line {reader.line_num}: not valid CSV ({exc})") from None
    return rows


def _read_parquet(p: Path) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows: list[dict[str, Any]] = pq.read_table(p).to_pylist()
        return rows
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{p.name} is not a readable Parquet file ({str(exc)[:200]})") from None


def _read_json(p: Path) -> list[dict[str, Any]]:
    text = p.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{p.name} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not all(isinstance(r, dict) for r in data):
            raise DatasetError(f"{p.name}: a JSON list must hold objects, one per row")
        return [dict(r) for r in data]
    held = _container(stripped)
    if held is not None:
        return held
    rows = []
    for number, row, why in _json_lines(text):
        if why:
            raise DatasetError(f"{p.name} line {number}: {why}")
        rows.append(row)
    return rows


def _container(text: str) -> list[dict[str, Any]] | None:
    """The rows of a JSON file that is one object holding them in a list ({"data": [...]}), or None."""
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None  # JSON Lines (or broken): read line by line
    for key in ("data", "rows", "train", "examples"):
        if isinstance(data, dict) and isinstance(data.get(key), list) and all(isinstance(r, dict) for r in data[key]):
            return [dict(r) for r in data[key]]
    return None


def _json_lines(text: str) -> Iterator[tuple[int, Any, str]]:
    """(line number, row, why it is bad or "") for each non-blank line of JSON Lines text (bytes
    that are not UTF-8 arrive as lone surrogates, and make their line bad)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            yield number, None, "not valid UTF-8"
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, None, f"not valid JSON ({exc.msg})"
            continue
        except RecursionError:
            yield number, None, "JSON nested too deeply"
            continue
        yield number, row, "" if isinstance(row, dict) else f"expected a JSON object, got {type(row).__name__}"


@dataclass
class Scan:
    """A whole dataset read tolerantly: the usable rows in TRL's shape and every bad one by line."""

    format: str
    rows: list[dict[str, Any]]
    bad: list[tuple[int, str]]  # (line number, why)


def scan(path: str | Path, fmt: str | None = None, columns: dict[str, str] | None = None) -> Scan:
    """Read every row, keeping going past bad ones (pre-flight reports them all; training stops at
    the first), with `columns` renamed (services/common/columns.py). Raises FileNotFoundError or
    DatasetError only when nothing can be read at all."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"dataset file not found: {p}")
    objects: list[tuple[int, dict[str, Any]]] = []
    bad: list[tuple[int, str]] = []
    text = p.read_text(encoding="utf-8", errors="surrogateescape") if _READERS.get(p.suffix.lower()) == "json" else ""
    if text.strip() and not text.lstrip().startswith("[") and _container(text.lstrip()) is None:
        # JSON Lines: go on past bad lines
        for number, row, why in _json_lines(text):
            if why:
                bad.append((number, why))
            else:
                objects.append((number, row))
    else:
        first_line = 2 if p.suffix.lower() == ".csv" else 1  # a CSV's header is line 1
        objects = [(first_line + i, row) for i, row in enumerate(load_rows(p))]
    if not objects:
        raise DatasetError(f"dataset {p.name} has no rows" if not bad else f"dataset {p.name} has no readable rows")
    renamed = mapped([row for _, row in objects], columns or {})
    objects = [(number, row) for (number, _), row in zip(objects, renamed, strict=True)]
    fmt = fmt or detect_format(r for _, r in objects)
    convert = _CONVERTERS[fmt]
    rows = []
    for number, row in objects:
        try:
            rows.append(convert(row))
        except KeyError as exc:
            bad.append((number, f"missing {exc} for {fmt}"))
        except (TypeError, ValueError) as exc:
            bad.append((number, f"not valid {fmt} data: {exc}"))
    return Scan(fmt, rows, sorted(bad))


def mapped(rows: list[dict[str, Any]], columns: dict[str, str]) -> list[dict[str, Any]]:
    """`rows` with `columns` (dataset.columns) renamed. Raises DatasetError where the mapping names a
    column that no row has: the job meant other data, or the mapping is out of date."""
    if not columns:
        return rows
    present = {str(k) for row in rows if isinstance(row, dict) for k in row}
    absent = {standard: theirs for standard, theirs in columns.items() if theirs not in present}
    if absent:
        named = ", ".join(f"{standard!r} to {theirs!r}" for standard, theirs in sorted(absent.items()))
        raise DatasetError(f"dataset.columns maps {named}, but no row has "
                           f"{'that column' if len(absent) == 1 else 'those columns'} "
                           f"(its columns: {', '.join(sorted(present))})")
    return [rename(row, columns) for row in rows]


def detect_format(rows: Iterable[dict[str, Any]]) -> str:
    """Name the format from the columns of the first row."""
    first = next(iter(rows), None)
    columns = set(first or {})
    if {"chosen", "rejected"} <= columns or {"preferred_output", "non_preferred_output"} <= columns:
        return "preference"  # the second: OpenAI's DPO rows
    if "messages" in columns:
        return "messages"
    if "conversations" in columns:
        return "sharegpt"
    if {"instruction", "output"} <= columns:
        return "alpaca"
    if {"prompt", "completion"} <= columns:
        return "prompt_completion"
    raise DatasetError(
        f"cannot tell the dataset format from its columns {sorted(columns)}; expected `messages`, "
        "`conversations`, `instruction`+`output`, `prompt`+`completion` or `chosen`+`rejected`"
    )


def normalize(rows: list[dict[str, Any]], fmt: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Return (format, rows in TRL's shape). Raises DatasetError naming the first bad row."""
    fmt = fmt or detect_format(rows)
    if fmt not in FORMATS:
        raise DatasetError(f"unknown dataset format {fmt!r}; use one of {FORMATS}")
    convert = _CONVERTERS[fmt]
    out = []
    for number, row in enumerate(rows, start=1):
        try:
            out.append(convert(row))
        except KeyError as exc:  # the row lacks a column this format needs: the format or the rows are wrong
            raise DatasetError(f"row {number} does not fit the {fmt} format: it has no {exc} column "
                               f"(its columns: {', '.join(sorted(map(str, row)))})") from exc
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"row {number} is not valid {fmt} data: {exc}") from exc
    return fmt, out


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


_CONVERTERS = {
    "messages": _messages,
    "sharegpt": _sharegpt,
    "alpaca": _alpaca,
    "prompt_completion": _prompt_completion,
    "preference": _preference,
}
