"""What a dataset holds, read as the trainer will read it: format, rows, bad rows by line, and token
lengths through the model's own tokenizer and chat template."""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftlab.v1 import dataset_pb2
from services.common import chat_templates, settings
from services.common.datasets import Scan

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)
MAX_MEASURED = 2000  # rows tokenized for lengths: all, or an even sample of this many
MAX_BAD_LISTED = 20


@dataclass
class Lengths:
    lengths: list[int]
    template_missing: bool = False


# (model, files' mtimes) -> (tokenizer, its own template)
_TOKENIZERS: dict[tuple[object, ...], tuple[PreTrainedTokenizerBase, str | None]] = {}
CACHED_TOKENIZERS = 4


def _stamp(base_model: str) -> tuple[object, ...]:
    """What a cached tokenizer of `base_model` is valid for: its local files' modification times."""
    folder = Path(base_model)
    if not folder.is_dir():
        return (base_model,)
    return (base_model, *((f.name, f.stat().st_mtime_ns) for f in sorted(folder.glob("tokenizer*"))))


def load_tokenizer(base_model: str, chat_template: str = "") -> PreTrainedTokenizerBase | None:
    """The model's tokenizer from a local folder or the Hugging Face cache (never downloads), or None;
    kept for the next check of the same model, with the job's chat template applied."""
    try:
        key = _stamp(base_model)
    except OSError:
        return None
    if key not in _TOKENIZERS:
        try:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(base_model, local_files_only=True,
                                                      trust_remote_code=settings.trust_remote_code())
        except Exception as exc:
            log.info("no tokenizer for %s: %s", base_model, exc)
            return None
        while len(_TOKENIZERS) >= CACHED_TOKENIZERS:
            _TOKENIZERS.pop(next(iter(_TOKENIZERS)))
        tokenizer.ftlab_cache_key = key  # what it was loaded from, for caches of what it computes
        _TOKENIZERS[key] = (tokenizer, tokenizer.chat_template)
    tokenizer, own = _TOKENIZERS[key]
    tokenizer.chat_template = chat_templates.resolve(chat_template) or own
    return tokenizer


def _sample(rows: list[Any]) -> list[Any]:
    if len(rows) <= MAX_MEASURED:
        return rows
    step = len(rows) / MAX_MEASURED
    return [rows[int(i * step)] for i in range(MAX_MEASURED)]


def _conversation(row: dict[str, Any]) -> list[list[dict[str, str]]]:
    """The conversations a row trains on: one, or for preference pairs prompt+chosen and prompt+rejected."""
    if "messages" in row:
        return [row["messages"]]
    if "completion" in row:
        return [row["prompt"] + row["completion"]]
    prompt = row.get("prompt", [])
    return [prompt + row["chosen"], prompt + row["rejected"]]


def same_text(rows: list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, n: int = 8) -> str | None:
    """The one text the chat template renders the first `n` rows' different conversations as, where it
    renders them all alike (services/common/chat_templates.same_for_all); else None."""
    if tokenizer.chat_template is None:
        return None
    conversations = [conv for row in rows[:n] for conv in _conversation(row)]
    rendered = [str(tokenizer.apply_chat_template(conv, tokenize=False)) for conv in conversations]
    return chat_templates.same_for_all(conversations, rendered)


def token_lengths(rows: list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase) -> Lengths:
    """Token length of each sampled row (the longer side of a preference pair)."""
    if tokenizer.chat_template is None:
        texts = [["\n".join(m["content"] for m in conv) for conv in _conversation(r)] for r in _sample(rows)]
        return Lengths([max(len(tokenizer(t)["input_ids"]) for t in ts) for ts in texts], template_missing=True)
    out = []
    for row in _sample(rows):
        out.append(max(len(tokenizer.apply_chat_template(conv, tokenize=True, return_dict=True)["input_ids"])
                       for conv in _conversation(row)))
    return Lengths(out)


def histogram(lengths: list[int]) -> list[dataset_pb2.LengthBucket]:
    """Power-of-two buckets from 32 tokens up to the longest row."""
    if not lengths:
        return []
    bounds = [32]
    while bounds[-1] < max(lengths):
        bounds.append(bounds[-1] * 2)
    counts = [0] * len(bounds)
    for n in lengths:
        counts[bisect.bisect_left(bounds, n)] += 1
    return [dataset_pb2.LengthBucket(upper_bound=b, rows=c) for b, c in zip(bounds, counts, strict=True)]


def report(uri: str, scan: Scan, lengths: Lengths | None, max_seq_length: int) -> dataset_pb2.DatasetReport:
    out = dataset_pb2.DatasetReport(uri=uri, format=scan.format, rows=len(scan.rows), bad_row_count=len(scan.bad))
    out.bad_rows.extend(dataset_pb2.BadRow(line=n, reason=r) for n, r in scan.bad[:MAX_BAD_LISTED])
    if lengths and lengths.lengths:
        ordered = sorted(lengths.lengths)
        out.rows_measured = len(ordered)
        out.max_tokens = ordered[-1]
        out.p50_tokens = ordered[len(ordered) // 2]
        out.p95_tokens = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        out.share_truncated = sum(n > max_seq_length for n in ordered) / len(ordered)
        out.token_lengths.extend(histogram(ordered))
    return out
