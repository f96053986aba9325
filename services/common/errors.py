"""Domain errors, and the one place where they become gRPC status codes.

Domain code raises these and knows nothing of gRPC. `ErrorInterceptor` turns them into a status
with `google.rpc` details (BadRequest field violations, ErrorInfo) that clients read back with
`grpc_status.rpc_status.from_call`. Anything else becomes INTERNAL with a generic message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

log = logging.getLogger(__name__)
DOMAIN = "ftlab.dev"


@dataclass
class DomainError(Exception):
    """Base of every error a caller can act on."""

    message: str
    reason: str = ""
    code: grpc.StatusCode = field(default=grpc.StatusCode.INTERNAL, init=False)

    def __str__(self) -> str:
        return self.message


@dataclass
class FieldViolation:
    """One bad field: its dotted path in the request and what is wrong with it."""

    field: str
    description: str


@dataclass
class InvalidArgument(DomainError):
    violations: list[FieldViolation] = field(default_factory=list)
    code: grpc.StatusCode = field(default=grpc.StatusCode.INVALID_ARGUMENT, init=False)


@dataclass
class NotFound(DomainError):
    code: grpc.StatusCode = field(default=grpc.StatusCode.NOT_FOUND, init=False)


@dataclass
class Precondition:
    """One unmet precondition: its type (e.g. "PREFLIGHT"), its subject (e.g. "gpu_memory") and why."""

    type: str
    subject: str
    description: str


@dataclass
class FailedPrecondition(DomainError):
    preconditions: list[Precondition] = field(default_factory=list)
    code: grpc.StatusCode = field(default=grpc.StatusCode.FAILED_PRECONDITION, init=False)


@dataclass
class ResourceExhausted(DomainError):
    code: grpc.StatusCode = field(default=grpc.StatusCode.RESOURCE_EXHAUSTED, init=False)


@dataclass
class Unauthenticated(DomainError):
    code: grpc.StatusCode = field(default=grpc.StatusCode.UNAUTHENTICATED, init=False)


@dataclass
class PermissionDenied(DomainError):
    code: grpc.StatusCode = field(default=grpc.StatusCode.PERMISSION_DENIED, init=False)


@dataclass
class Aborted(DomainError):
    code: grpc.StatusCode = field(default=grpc.StatusCode.ABORTED, init=False)


@dataclass
class Unavailable(DomainError):
    code: grpc.StatusCode = field(default=grpc.StatusCode.UNAVAILABLE, init=False)


def to_status(err: DomainError) -> grpc.Status:
    from services.common.settings import redact

    details = []
    if isinstance(err, InvalidArgument) and err.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=redact(v.description))
                for v in err.violations
            ]
        )
        details.append(bad)
    if isinstance(err, FailedPrecondition) and err.preconditions:
        details.append(error_details_pb2.PreconditionFailure(violations=[
            error_details_pb2.PreconditionFailure.Violation(type=v.type, subject=v.subject,
                                                            description=redact(v.description))
            for v in err.preconditions]))
    if err.reason:
        details.append(error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN))
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    status = status_pb2.Status(code=getattr(code_pb2, err.code.name), message=redact(err.message)[:2000],
                               details=packed)
    return rpc_status.to_status(status)


async def abort_with(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> grpc.StatusCode:
    """Abort the call for `exc`: DomainError with its code and details, anything else INTERNAL."""
    if isinstance(exc, DomainError):
        status = to_status(exc)
        await context.abort(status.code, status.details, status.trailing_metadata)
    log.error("internal error in %s", method, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
    raise AssertionError("unreachable")  # context.abort raises


def abort_with_sync(context, exc: BaseException, method: str) -> None:
    """`abort_with` for handlers running in the server's thread pool (their context aborts by raising)."""
    if isinstance(exc, DomainError):
        status = to_status(exc)
        context.abort(status.code, status.details, status.trailing_metadata)
    log.error("internal error in %s", method, exc_info=exc)
    context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")


def details_of(exc: grpc.RpcError) -> tuple[str, list[tuple[str, str]]]:
    """(the ErrorInfo reason, the BadRequest field violations) another service sent with its error."""
    try:
        status = rpc_status.from_call(exc)
    except ValueError:
        return "", []
    reason, violations = "", []
    for detail in status.details if status is not None else ():
        info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(bad):
            violations += [(v.field, v.description) for v in bad.field_violations]
    return reason, violations
