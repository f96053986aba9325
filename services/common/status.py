"""Where domain errors become gRPC statuses: the one table of status codes, and the rich details.

`ServiceInterceptor` (services/common/interceptors.py) aborts a call through `abort_with`: a
DomainError becomes its status with `google.rpc` details (BadRequest field violations,
PreconditionFailure, ErrorInfo) that clients read back with `grpc_status.rpc_status.from_call`;
anything else becomes INTERNAL with a generic message, and the traceback goes to the server's log.
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.common import errors as e

log = logging.getLogger(__name__)

CODES: dict[type[e.DomainError], grpc.StatusCode] = {
    e.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    e.NotFound: grpc.StatusCode.NOT_FOUND,
    e.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    e.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    e.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    e.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    e.Aborted: grpc.StatusCode.ABORTED,
    e.Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def code_of(err: BaseException) -> grpc.StatusCode:
    """The status code of `err`: its nearest class in CODES (a subclass inherits its base's), else INTERNAL."""
    for cls in type(err).__mro__:
        if cls in CODES:
            return CODES[cls]
    return grpc.StatusCode.INTERNAL


def to_status(err: e.DomainError) -> grpc.Status:
    from services.common.settings import redact

    details = []
    if isinstance(err, e.InvalidArgument) and err.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=redact(v.description))
                for v in err.violations
            ]
        )
        details.append(bad)
    if isinstance(err, e.FailedPrecondition) and err.preconditions:
        details.append(error_details_pb2.PreconditionFailure(violations=[
            error_details_pb2.PreconditionFailure.Violation(type=v.type, subject=v.subject,
                                                            description=redact(v.description))
            for v in err.preconditions]))
    if err.reason:
        details.append(error_details_pb2.ErrorInfo(reason=err.reason, domain=e.DOMAIN))
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    status = status_pb2.Status(code=getattr(code_pb2, code_of(err).name), message=redact(err.message)[:2000],
                               details=packed)
    return rpc_status.to_status(status)


async def abort_with(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> grpc.StatusCode:
    """Abort the call for `exc`: DomainError with its code and details, anything else INTERNAL."""
    if isinstance(exc, e.DomainError):
        status = to_status(exc)
        await context.abort(status.code, status.details, status.trailing_metadata)
    log.error("internal error in %s", method, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
    raise AssertionError("unreachable")  # context.abort raises


def abort_with_sync(context: grpc.ServicerContext, exc: BaseException, method: str) -> None:
    """`abort_with` for handlers running in the server's thread pool (their context aborts by raising)."""
    if isinstance(exc, e.DomainError):
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
