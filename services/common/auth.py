"""Who is calling, and what they may do: bearer tokens.

Tokens come from a file (FTLAB_TOKENS_FILE, JSON or YAML: `tokens: [{user, role, token}]`, or
`sha256` in place of `token` to keep no secret on disk) and from FTLAB_TOKENS ("user:role:token,...").
Roles: `user` sees its own jobs; `admin` sees everyone's; `service` is what the services present to
one another (FTLAB_SERVICE_TOKEN) and the only role the internal APIs (trainer, worker registry)
accept. With no tokens configured, auth is off and a caller names itself in `x-ftlab-user` (a single
user's machine, the tests of everything else); with tokens, every call but health and reflection
needs one, and `x-ftlab-user` is ignored.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from services.common import settings
from services.common.errors import FieldViolation, InvalidArgument, PermissionDenied, Unauthenticated

if TYPE_CHECKING:
    import grpc

AUTHORIZATION = "authorization"
USER_HEADER = "x-ftlab-user"
DEFAULT_USER = "default"
ROLES = ("user", "admin", "service")
INTERNAL_SERVICES = frozenset({"ftlab.v1.TrainerService", "ftlab.v1.WorkerRegistryService"})
EXEMPT_SERVICES = frozenset({"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                             "grpc.reflection.v1.ServerReflection"})
_VALID_USER = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")

# a call's metadata: (key, value) pairs, the value text for every key but binary (`-bin`) ones
Metadata: TypeAlias = Iterable[tuple[str, str]] | None


@dataclass(frozen=True)
class Caller:
    user: str
    role: str = "user"

    @property
    def admin(self) -> bool:
        return self.role in ("admin", "service")

    def sees(self, owner: str) -> bool:
        """Whether this caller may see a job owned by `owner` (others' jobs do not exist for it)."""
        return self.admin or owner == self.user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    def __init__(self, by_digest: dict[str, Caller] | None = None) -> None:
        self.by_digest = by_digest or {}

    @property
    def enabled(self) -> bool:
        return bool(self.by_digest)

    def lookup(self, token: str) -> Caller | None:
        return self.by_digest.get(_digest(token))

    @classmethod
    def from_env(cls) -> "Tokens":
        out: dict[str, Caller] = {}
        configured = settings.tokens()
        path = configured.file
        if path:
            text = Path(path).read_text()
            if path.endswith((".yaml", ".yml")):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
            for entry in data.get("tokens", []):
                digest = entry.get("sha256") or _digest(entry["token"])
                out[digest] = _caller(entry["user"], entry.get("role", "user"))
        for item in filter(None, configured.inline.split(",")):
            user, role, token = item.strip().split(":", 2)
            out[_digest(token)] = _caller(user, role)
        service = configured.service
        if service and out:
            out.setdefault(_digest(service), Caller("ftlab-service", "service"))
        return cls(out)


def _caller(user: str, role: str) -> Caller:
    if role not in ROLES or not _VALID_USER.match(user):
        raise ValueError(f"bad token entry for {user!r}: role must be one of {ROLES}")
    return Caller(user, role)


_TOKENS: Tokens | None = None


def tokens() -> Tokens:
    """The process's tokens (read once from the environment)."""
    global _TOKENS
    if _TOKENS is None:
        _TOKENS = Tokens.from_env()
    return _TOKENS


def bearer(metadata: Metadata) -> str:
    for key, value in metadata or ():
        if key == AUTHORIZATION:
            scheme, _, token = value.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


def authenticate(metadata: Metadata, service: str) -> Caller | None:
    """The caller of a call to `service`, or None for the exempt services (health, reflection).
    Raises Unauthenticated (no or unknown token) or PermissionDenied (a user on an internal API)."""
    if service in EXEMPT_SERVICES:
        return None
    table = tokens()
    if not table.enabled:
        return Caller(_named_user(metadata), "user")
    token = bearer(metadata)
    if not token:
        raise Unauthenticated("missing bearer token: send `authorization: Bearer <token>`", reason="NO_TOKEN")
    who = table.lookup(token)
    if who is None:
        raise Unauthenticated("unknown token", reason="BAD_TOKEN")
    if service in INTERNAL_SERVICES and who.role != "service":
        raise PermissionDenied(f"{service} is for FineTune Lab's own services", reason="SERVICE_ONLY")
    return who


def _named_user(metadata: Metadata) -> str:
    for key, value in metadata or ():
        if key == USER_HEADER:
            if not _VALID_USER.match(value):
                raise InvalidArgument("invalid user name in metadata",
                                      violations=[FieldViolation(USER_HEADER, "1-64 of letters, digits, _ . @ -")])
            return value
    return DEFAULT_USER


def caller(context: grpc.aio.ServicerContext) -> Caller:
    """The caller of the call being handled (authenticated by the interceptor already)."""
    return authenticate(context.invocation_metadata(), "") or Caller(DEFAULT_USER)


def service_metadata() -> tuple[tuple[str, str], ...]:
    """What this process sends when it calls another service: its service token, when auth is on."""
    token = settings.tokens().service
    return ((AUTHORIZATION, f"Bearer {token}"),) if token else ()
