"""One address for users: where the AnalyzerService and the ArtifactService run apart from the
scheduler (the Compose and Kubernetes layouts), the scheduler serves them too, forwarding each call
to the service that owns it. The caller's metadata (its token or user) goes along, so the service
behind authenticates the caller itself; its status, message and error details come back as they
were. Streams are forwarded message by message in both directions (downloads, uploads).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeAlias

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from services.common.channels import internal_channel
from services.common.server import MAX_MESSAGE_BYTES, Registration

Context: TypeAlias = grpc.aio.ServicerContext
Requests: TypeAlias = Message | AsyncIterator[Message]  # one request, or the caller's stream of them
Handler: TypeAlias = Callable[[Requests, Context], Awaitable[Message] | AsyncIterator[Message]]

# metadata a call carries that belongs to its own hop, not to the caller
_HOP = ("grpc-", ":")
_HOP_KEYS = frozenset({"user-agent", "content-type", "te", "host", "accept-encoding"})


def _forwarded(context: Context) -> tuple[tuple[str, str | bytes], ...]:
    return tuple((k, v) for k, v in context.invocation_metadata() or ()
                 if not k.startswith(_HOP) and k not in _HOP_KEYS)


class Forwarder:
    """The calls of one service, forwarded to `address`."""

    def __init__(self, service: ServiceDescriptor, address: str) -> None:
        self.service, self.address = service, address
        self._channel: grpc.aio.Channel | None = None

    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = internal_channel(self.address, options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    def registration(self) -> Registration:
        return Registration(self.service.full_name, self,
                            lambda forwarder, server: server.add_generic_rpc_handlers((forwarder.handler(),)))

    def handler(self) -> grpc.GenericRpcHandler:
        handlers: dict[str, grpc.RpcMethodHandler] = {}
        for method in self.service.methods:
            request = message_factory.GetMessageClass(method.input_type)
            response = message_factory.GetMessageClass(method.output_type)
            path = f"/{self.service.full_name}/{method.name}"
            kind = ("stream" if method.client_streaming else "unary") + "_" + \
                   ("stream" if method.server_streaming else "unary")
            make = getattr(grpc, f"{kind}_rpc_method_handler")
            handlers[method.name] = make(self._reply(kind, path, request, response),
                                         request_deserializer=request.FromString,
                                         response_serializer=response.SerializeToString)
        return grpc.method_handlers_generic_handler(self.service.full_name, handlers)

    def _call(self, kind: str, path: str, request: type[Message], response: type[Message]) -> Any:
        """The channel's multi-callable of this kind (unary_unary, ...) for `path` (grpc is untyped here)."""
        return getattr(self.channel(), kind)(path, request_serializer=request.SerializeToString,
                                             response_deserializer=response.FromString)

    def _reply(self, kind: str, path: str, request: type[Message], response: type[Message]) -> Handler:
        """The handler of one method: its request (one message or a stream) goes on as it came; a single
        reply comes back awaited, a streamed one message by message."""
        if kind.endswith("_unary"):
            async def unary(messages: Requests, context: Context) -> Message:
                try:
                    reply: Message = await self._call(kind, path, request, response)(
                        messages, metadata=_forwarded(context), timeout=context.time_remaining())
                    return reply
                except grpc.aio.AioRpcError as exc:
                    await _abort(context, exc)
            return unary

        async def streamed(messages: Requests, context: Context) -> AsyncIterator[Message]:
            stream = self._call(kind, path, request, response)(
                messages, metadata=_forwarded(context), timeout=context.time_remaining())
            try:
                async for item in stream:
                    yield item
            except grpc.aio.AioRpcError as exc:
                await _abort(context, exc)
            finally:
                stream.cancel()  # the caller went away, or it is over: the call behind ends too
        return streamed


async def _abort(context: Context, exc: grpc.aio.AioRpcError) -> NoReturn:
    """End the call as the service behind ended it: code, message, and the details in its trailers."""
    details = tuple((k, v) for k, v in exc.trailing_metadata() or () if k == "grpc-status-details-bin")
    code = exc.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        await context.abort(code, f"the service behind this scheduler is not reachable: {exc.details()}")
    await context.abort(code, exc.details() or "", details)
    raise AssertionError("context.abort returned")  # it raises; grpc is untyped here, so mypy cannot tell
