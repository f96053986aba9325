"""The process-wide settings every service reads from the environment, in one place: where things
live (FTLAB_HOME, FTLAB_DATABASE_URL), TLS and tokens, and the limits an administrator sets. The
settings of each service's own flags are in services/serve_settings.py."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Tls:
    cert: str | None  # this server's certificate (FTLAB_TLS_CERT) and key (FTLAB_TLS_KEY): TLS on
    key: str | None
    client_ca: str | None  # callers must present a certificate this CA signed (FTLAB_TLS_CLIENT_CA)
    ca: str | None  # the CA that signed the services' certificates, for calls to them (FTLAB_TLS_CA)
    client_cert: str | None  # this process's certificate for mutual TLS (FTLAB_TLS_CLIENT_CERT, _KEY)
    client_key: str | None


def tls() -> Tls:
    get = os.environ.get
    return Tls(get("FTLAB_TLS_CERT"), get("FTLAB_TLS_KEY"), get("FTLAB_TLS_CLIENT_CA"), get("FTLAB_TLS_CA"),
               get("FTLAB_TLS_CLIENT_CERT"), get("FTLAB_TLS_CLIENT_KEY"))


@dataclass(frozen=True)
class Tokens:
    file: str | None  # a JSON or YAML file of tokens (FTLAB_TOKENS_FILE)
    inline: str  # user:role:token,... (FTLAB_TOKENS)
    service: str | None  # the token services present to each other (FTLAB_SERVICE_TOKEN)


def tokens() -> Tokens:
    return Tokens(os.environ.get("FTLAB_TOKENS_FILE"), os.environ.get("FTLAB_TOKENS") or "",
                  os.environ.get("FTLAB_SERVICE_TOKEN"))


def max_upload_bytes() -> int:
    """Largest dataset upload accepted (FTLAB_MAX_UPLOAD_BYTES; default 20 GiB)."""
    return int(os.environ.get("FTLAB_MAX_UPLOAD_BYTES") or 20 << 30)


def preflight_template_seconds() -> float:
    """How long pre-flight may spend rendering a job's chat template over its data
    (FTLAB_PREFLIGHT_TEMPLATE_SECONDS; default 10)."""
    return float(os.environ.get("FTLAB_PREFLIGHT_TEMPLATE_SECONDS") or 10.0)


def trust_remote_code() -> bool:
    """Whether model code shipped with a model may run (FTLAB_TRUST_REMOTE_CODE=1). Off unless an
    administrator turns it on for the whole deployment: a model repository's Python is arbitrary code."""
    return os.environ.get("FTLAB_TRUST_REMOTE_CODE", "").lower() in ("1", "true", "yes")


def redact(text: str) -> str:
    """`text` with the server's data directory written as $FTLAB_HOME: where the server keeps its
    store is not for users to know (it would tell them what to aim a path at)."""
    for root in _homes():
        if root in text:
            text = text.replace(root, "$FTLAB_HOME")
    return text


def _homes() -> list[str]:
    root = home()
    names = {str(root), os.path.realpath(root)}
    return sorted((n for n in names if len(n) > 1), key=len, reverse=True)


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

    def ensure(self) -> "Paths":
        for p in (self.root, self.artifacts, self.datasets):
            p.mkdir(parents=True, exist_ok=True)
        return self


def paths() -> Paths:
    return Paths(home())
