"""Domain errors: what a caller can act on, in the domain's words.

Domain code raises these and knows nothing of gRPC: services/common/status.py, used by the
interceptors, is the one place where each becomes a gRPC status with `google.rpc` details.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DOMAIN = "ftlab.dev"


@dataclass
class DomainError(Exception):
    """Base of every error a caller can act on."""

    message: str
    reason: str = ""

    def __str__(self) -> str:
        return self.message


@dataclass
class FieldViolation:
    """One bad field: its dotted path in the request and what is wrong with it."""

    field: str
    description: str


@dataclass
class InvalidArgument(DomainError):
    """A request value that is wrong whatever the state: each bad field named."""

    violations: list[FieldViolation] = field(default_factory=list)


@dataclass
class NotFound(DomainError):
    """No such resource, or not one the caller may see."""


@dataclass
class Precondition:
    """One unmet precondition: its type (e.g. "PREFLIGHT"), its subject (e.g. "gpu_memory") and why."""

    type: str
    subject: str
    description: str


@dataclass
class FailedPrecondition(DomainError):
    """A request the current state does not allow: each unmet condition named."""

    preconditions: list[Precondition] = field(default_factory=list)


@dataclass
class ResourceExhausted(DomainError):
    """A limit or a full resource: a quota, a disk, a busy pool."""


@dataclass
class Unauthenticated(DomainError):
    """The caller's identity is missing or not accepted."""


@dataclass
class PermissionDenied(DomainError):
    """The caller is known but may not do this."""


@dataclass
class Aborted(DomainError):
    """A conflict with a concurrent change; trying again may succeed."""


@dataclass
class Unavailable(DomainError):
    """A service or store that cannot be reached right now."""
