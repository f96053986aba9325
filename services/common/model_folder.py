"""A local model folder that cannot hold a model: what the trainer and pre-flight both say before
transformers reads it (transformers reads a folder without config.json as a config without
`model_type`, which reads as a damaged file)."""

from __future__ import annotations

from pathlib import Path


def missing_config(base: str) -> str | None:
    """None when `base` is no local folder or has its config.json; else what to add to "has no
    config.json": "" or why (a link to a file that is gone)."""
    config = Path(base) / "config.json"
    if not Path(base).is_dir() or config.is_file():
        return None
    return " (config.json is a link to a file that does not exist)" if config.is_symlink() else ""
