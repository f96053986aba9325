"""Read a dataset file and normalize its rows into the shapes TRL trains on.

Formats in: chat `messages`, ShareGPT `conversations`, alpaca (instruction/input/output),
prompt/completion, and preference pairs (chosen/rejected, optionally with prompt). Out: TRL's
conversational `messages`, or `prompt`/`completion`, or `prompt`/`chosen`/`rejected`
(each row converted by services/common/row_formats.py).
Pure functions over rows; only `load_rows` touches the file system.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from services.common.columns import rename
from services.common.row_formats import CONVERTERS

FORMATS = ("messages", "sharegpt", "alpaca", "prompt_completion", "preference")
_READERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


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
    convert = CONVERTERS[fmt]
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
    convert = CONVERTERS[fmt]
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

