"""A local model folder that cannot hold a model: what the trainer and pre-flight both say before
transformers reads it (transformers reads a folder without config.json as a config without
`model_type`, which reads as a damaged file; and it builds attention layers of whatever shape a
config's head counts give, then says only that the weights do not fit them)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

_ARCHIVES = (".tar", ".tar.gz", ".tgz", ".zip", ".7z", ".tar.xz", ".tar.bz2")


def not_a_folder(base: str) -> str | None:
    """None unless `base` is a file (a model is a folder): then what to do instead, for "is a file, not
    a model folder" (transformers reads a file given as the model as its config, and says it is not JSON)."""
    path = Path(base)
    try:
        if not path.is_file():
            return None
    except (OSError, ValueError):  # a name too long, a folder it may not look into: the other checks say
        return None
    if path.name.lower().endswith(_ARCHIVES):
        return ": it is an archive; unpack it and give the folder it holds"
    return f": give the folder that holds config.json and the weights (this file is in {path.parent})"


def missing_config(base: str) -> str | None:
    """None when `base` is no local folder or has its config.json; else what to add to "has no
    config.json": "" or why (a link to a file that is gone)."""
    config = Path(base) / "config.json"
    try:
        if not Path(base).is_dir() or config.is_file():
            return None
    except (OSError, ValueError):
        return None
    return " (config.json is a link to a file that does not exist)" if config.is_symlink() else ""


def heads_misfit(base: str) -> str | None:
    """What is wrong with the attention head counts of a local model's config.json, confirmed by its
    weights (None where they fit, or where the config or the weights cannot be read here): query heads
    not a multiple of the key/value heads, or heads x head_dim that is not the query rows the weights
    hold (a config edited, or another model's: with no head_dim set, hidden_size / heads)."""
    try:
        config = json.loads((Path(base) / "config.json").read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(config, dict):
        return None
    hidden, heads, kv, head_dim = (_count(config.get(k)) for k in ("hidden_size", "num_attention_heads",
                                                                   "num_key_value_heads", "head_dim"))
    if hidden is None or heads is None:
        return None
    if kv is not None and heads % kv:
        return f"num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}"
    per_head = head_dim if head_dim is not None else hidden // heads
    rows = _query_rows(Path(base))
    if rows is None or rows == heads * per_head:
        return None
    how = f"head_dim {per_head}" if per_head == head_dim else f"hidden_size {hidden} / {heads} = {per_head} per head"
    return (f"num_attention_heads {heads} x {how} makes {heads * per_head} query rows, but the weights' query "
            f"projection has {rows}")


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _query_rows(folder: Path) -> int | None:
    """The rows of the first layer's query projection, from a safetensors header (None if unread)."""
    files = sorted(folder.glob("*.safetensors"))
    for file in files[:8]:
        try:
            with file.open("rb") as f:
                (size,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(min(size, 16 << 20)))
        except (OSError, ValueError, RecursionError, struct.error):
            continue
        for name, info in header.items() if isinstance(header, dict) else ():
            if name.endswith("layers.0.self_attn.q_proj.weight") and isinstance(info, dict) and info.get("shape"):
                shape = info["shape"]
                return int(shape[0]) if isinstance(shape, list) and shape and isinstance(shape[0], int) else None
    return None
