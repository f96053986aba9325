"""The server interceptor every service shares: authentication, status mapping for domain errors,
and metrics.

grpc.aio interceptors see only the handler, so this one wraps each behaviour (unary or streaming)
in a function that times the call, maps exceptions through `status.abort_with`, and counts the
outcome by service, method and code.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import Message

from services.common import auth, metrics, status, validate
from services.common.errors import FieldViolation, InvalidArgument

Context: TypeAlias = grpc.aio.ServicerContext
Request: TypeAlias = Any  # a message, or for client-streaming calls an async iterator of them
Behavior: TypeAlias = Callable[[Request, Context], Any]  # a coroutine, generator or async generator function


class _Malformed:
    """What a request that does not parse becomes, so that the call can answer INVALID_ARGUMENT."""

    def __init__(self, size: int) -> None:
        self.size = size


def _tolerant(deserializer: Callable[[bytes], Message] | None) -> Callable[[bytes], Message | _Malformed] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Message | _Malformed:
        try:
            return deserializer(data)
        except Exception:  # DecodeError, or anything a broken message makes the parser raise
            return _Malformed(len(data))
    return parse


def _checked(request: Message | _Malformed, rpc: str) -> Message:
    """The request, once it is known to parse and to follow the rules every request follows."""
    if isinstance(request, _Malformed):
        raise InvalidArgument(f"the request ({request.size:,} bytes) is not a valid message for {rpc}",
                              violations=[FieldViolation("request", "does not parse as the method's request type")])
    validate.check(request)
    return request


async def _checked_stream(requests: AsyncIterator[Message | _Malformed], rpc: str) -> AsyncIterator[Message]:
    async for request in requests:
        yield _checked(request, rpc)


def _split(method: str) -> tuple[str, str]:
    _, service, name = method.split("/", 2) if method.count("/") >= 2 else ("", "", method)
    return service, name


class ServiceInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped here
    """Times and counts every call and turns domain errors into status codes with details."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, name = _split(handler_call_details.method)

        async def finish(context: Context, started: float, exc: BaseException | None) -> None:
            code, abort = _outcome(context, exc)
            try:
                if abort and exc is not None:
                    await status.abort_with(context, exc, handler_call_details.method)
            finally:
                metrics.record_rpc(service, name, _code_name(code), time.perf_counter() - started)

        def unary(behavior: Behavior, streamed_requests: bool = False) -> Callable[[Request, Context],
                                                                                    Awaitable[Message]]:
            async def call(request: Request, context: Context) -> Message:
                started = time.perf_counter()
                try:
                    auth.authenticate(context.invocation_metadata(), service)
                    request = _checked_stream(request, name) if streamed_requests else _checked(request, name)
                    response: Message = await behavior(request, context)
                except BaseException as exc:
                    await finish(context, started, exc)
                    raise
                await finish(context, started, None)
                return response
            return call

        def finish_sync(context: Context, started: float, exc: BaseException | None) -> None:
            """`finish` for handlers that run in the server's thread pool (plain generators)."""
            code, abort = _outcome(context, exc)
            try:
                if abort and exc is not None:
                    status.abort_with_sync(context, exc, handler_call_details.method)
            finally:
                metrics.record_rpc(service, name, _code_name(code), time.perf_counter() - started)

        def streaming(behavior: Behavior, streamed_requests: bool = False) -> Callable[
                [Request, Context], Iterator[Message] | AsyncIterator[object]]:
            if inspect.isgeneratorfunction(behavior):
                def call_sync(request: Request, context: Context) -> Iterator[Message]:
                    started = time.perf_counter()
                    try:
                        auth.authenticate(context.invocation_metadata(), service)
                        yield from behavior(_checked(request, name), context)
                    except BaseException as exc:
                        finish_sync(context, started, exc)
                        raise
                    finish_sync(context, started, None)
                return call_sync

            async def call(request: Request, context: Context) -> AsyncIterator[object]:
                started = time.perf_counter()
                try:
                    auth.authenticate(context.invocation_metadata(), service)
                    request = _checked_stream(request, name) if streamed_requests else _checked(request, name)
                    result = behavior(request, context)
                    if inspect.isasyncgen(result):
                        async for item in result:
                            yield item
                    else:
                        await result
                except BaseException as exc:
                    await finish(context, started, exc)
                    raise
                await finish(context, started, None)
            return call

        kinds = (
            ("unary_unary", grpc.unary_unary_rpc_method_handler, unary, False),
            ("unary_stream", grpc.unary_stream_rpc_method_handler, streaming, False),
            ("stream_unary", grpc.stream_unary_rpc_method_handler, unary, True),
            ("stream_stream", grpc.stream_stream_rpc_method_handler, streaming, True),
        )
        for attr, make, wrap, streamed in kinds:
            behavior = getattr(handler, attr)
            if behavior is not None:
                return make(wrap(behavior, streamed), _tolerant(handler.request_deserializer),
                            handler.response_serializer)
        return handler



def _outcome(context: Context, exc: BaseException | None) -> tuple[grpc.StatusCode, bool]:
    """The status a call ends with, and whether `exc` still has to be turned into it (abort)."""
    if exc is None:
        return grpc.StatusCode.OK, False
    if isinstance(exc, grpc.aio.AbortError):  # raised by context.abort itself: the status is set
        return context.code() or grpc.StatusCode.UNKNOWN, False
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return grpc.StatusCode.CANCELLED, False
    return status.code_of(exc), True


def _code_name(code: object) -> str:
    return code.name if isinstance(code, grpc.StatusCode) else str(code)
