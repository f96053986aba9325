"""Where things live, from the environment: FTLAB_HOME (data directory) and friends."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def max_upload_bytes() -> int:
    """Largest dataset upload accepted (FTLAB_MAX_UPLOAD_BYTES; default 20 GiB)."""
    return int(os.environ.get("FTLAB_MAX_UPLOAD_BYTES") or 20 << 30)


def trust_remote_code() -> bool:
    """Whether model code shipped with a model may run (FTLAB_TRUST_REMOTE_CODE=1). Off unless an
    administrator turns it on for the whole deployment: a model repository's Python is arbitrary code."""
    return os.environ.get("FTLAB_TRUST_REMOTE_CODE", "").lower() in ("1", "true", "yes")


def home() -> Path:
    return Path(os.environ.get("FTLAB_HOME") or Path.home() / ".ftlab").expanduser().resolve()


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def database_url(self) -> str:
        return os.environ.get("FTLAB_DATABASE_URL") or f"sqlite:///{self.root / 'ftlab.db'}"

    def job_dir(self, job_id: str) -> Path:
        return self.artifacts / "jobs" / job_id

    def dataset(self, uri: str) -> Path:
        """A dataset named in a config: an uploaded one by its name ("datasets/{sha256}" or the bare
        digest) as its normalized rows, an absolute path as is, a relative one under the datasets folder."""
        digest = uri.removeprefix("datasets/")
        if _SHA256.match(digest):
            return self.datasets / digest / "data.jsonl"
        p = Path(uri).expanduser()
        return p if p.is_absolute() else self.datasets / p

    def ensure(self) -> "Paths":
        for p in (self.root, self.artifacts, self.datasets):
            p.mkdir(parents=True, exist_ok=True)
        return self


def paths() -> Paths:
    return Paths(home())
