"""A local model folder that cannot hold a model: what the trainer and pre-flight both say before
transformers reads it (transformers reads a folder without config.json as a config without
`model_type`, which reads as a damaged file; and it builds attention layers of whatever shape a
config's head counts give, then says only that the weights do not fit them)."""

from __future__ import annotations

import json
from pathlib import Path


def missing_config(base: str) -> str | None:
    """None when `base` is no local folder or has its config.json; else what to add to "has no
    config.json": "" or why (a link to a file that is gone)."""
    config = Path(base) / "config.json"
    if not Path(base).is_dir() or config.is_file():
        return None
    return " (config.json is a link to a file that does not exist)" if config.is_symlink() else ""


def heads_misfit(base: str) -> str | None:
    """What is wrong with the attention head counts of a local model's config.json (None where they fit
    or where there is no such file): heads that do not divide the hidden size, where the config sets
    no head_dim, or query heads that are not a multiple of the key/value heads."""
    try:
        config = json.loads((Path(base) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    hidden, heads, kv = (config.get(k) for k in ("hidden_size", "num_attention_heads", "num_key_value_heads"))
    if not isinstance(heads, int) or isinstance(heads, bool) or heads <= 0:
        return None
    if config.get("head_dim") is None and isinstance(hidden, int) and hidden % heads:
        return f"hidden_size {hidden} is not a multiple of num_attention_heads {heads} (and no head_dim is set)"
    if isinstance(kv, int) and not isinstance(kv, bool) and kv > 0 and heads % kv:
        return f"num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}"
    return None
