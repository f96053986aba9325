"""Errors as OpenAI's clients expect them: `{"error": {"message", "type", "param", "code"}}` with the
HTTP status their SDKs turn into typed errors (400 BadRequestError, 401 AuthenticationError, 403
PermissionDeniedError, 404 NotFoundError, 409 ConflictError, 413, 429 RateLimitError, 5xx
InternalServerError), from a refusal of the gateway's own or of the gRPC services behind it."""

from __future__ import annotations

from typing import Any

import grpc
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.openai_gateway.shapes import Invalid

_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409, grpc.StatusCode.ABORTED: 409, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DEADLINE_EXCEEDED: 504}
_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error",
          404: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
          429: "rate_limit_error"}
# our field names as the OpenAI parameters they come from
PARAMS = {"config.dataset.uri": "training_file", "config.dataset.eval_uri": "validation_file",
          "config.base_model": "model", "config.seed": "seed", "config.learning_rate":
          "hyperparameters.learning_rate_multiplier", "config.num_epochs": "hyperparameters.n_epochs",
          "config.per_device_train_batch_size": "hyperparameters.batch_size",
          "config.dpo_beta": "method.dpo.hyperparameters.beta", "dataset": "training_file",
          "eval_dataset": "validation_file", "model": "model"}


def body(message: str, status: int, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": _TYPES.get(status, "server_error"), "param": param, "code": code}}


def response(message: str, status: int, param: str | None = None, code: str | None = None) -> JSONResponse:
    return JSONResponse(body(message, status, param, code), status_code=status)


def from_rpc(err: grpc.aio.AioRpcError, default_param: str | None = None) -> JSONResponse:
    """A refusal of the services behind, with the field it named as OpenAI's parameter."""
    status = _STATUS.get(err.code(), 500)
    param, reason, field = default_param, None, ""
    details = rpc_status.from_call(err) if hasattr(err, "trailing_metadata") else None
    for detail in details.details if details is not None else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            if bad.field_violations:
                field = bad.field_violations[0].field
                param = PARAMS.get(field, field.removeprefix("config."))
        elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            if failure.violations:
                param = PARAMS.get(failure.violations[0].subject, param)
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
    if reason == "PREFLIGHT_FAILED":  # the job's files or settings cannot train: a bad request, not a conflict
        status = 400
    if reason == "UPLOAD_TOO_LARGE":
        status = 413
    if status >= 500:
        return response("the FineTune Lab services could not answer; try again", status, None,
                        err.code().name.lower())
    message = err.details() or err.code().name
    if field and param and message.startswith(f"{field}:"):  # named as the caller named it
        message = param + message[len(field):]
    return response(message, status, param, (reason or err.code().name).lower())


async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Invalid)
    return response(exc.message, exc.status, exc.param, exc.code)


async def on_rpc(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, grpc.aio.AioRpcError)
    return from_rpc(exc)


async def on_validation(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own check of a request's shape, as OpenAI words it: the first parameter at fault."""
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    return response(f"{'.'.join(where) or 'request'}: {first.get('msg', 'invalid')}", 400, ".".join(where) or None)
