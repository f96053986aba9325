"""Channels from one FineTune Lab service to another: every call carries this process's service
token (FTLAB_SERVICE_TOKEN) when auth is on, and goes over TLS when FTLAB_TLS_CA names the CA that
signed the servers' certificates (with FTLAB_TLS_CLIENT_CERT and _KEY, this process proves itself
with a certificate of its own: mutual TLS)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import grpc

from services.common import settings
from services.common.auth import service_metadata

Details: TypeAlias = grpc.aio.ClientCallDetails
# what the next interceptor (or the channel) answers: a call object, awaitable and, for streams, iterable
Continuation: TypeAlias = Callable[[Details, Any], Awaitable[Any]]


# grpc is untyped here, so its interceptor classes are Any (misc: subclassing Any)
class _ServiceToken(
        grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[misc]
        grpc.aio.StreamUnaryClientInterceptor, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, metadata: Iterable[tuple[str, str]]) -> None:
        self.metadata = tuple(metadata)

    def _details(self, d: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        present = {k for k, _ in d.metadata or ()}
        extra = tuple((k, v) for k, v in self.metadata if k not in present)  # a forwarded user's token wins
        return grpc.aio.ClientCallDetails(d.method, d.timeout, grpc.aio.Metadata(*(tuple(d.metadata or ()) + extra)),
                                          d.credentials, d.wait_for_ready)

    async def intercept_unary_unary(self, continuation: Continuation, details: Details, request: object) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation: Continuation, details: Details, request: object) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_stream_unary(self, continuation: Continuation, details: Details,
                                     request_iterator: AsyncIterable[object] | Iterable[object]) -> Any:
        return await continuation(self._details(details), request_iterator)

    async def intercept_stream_stream(self, continuation: Continuation, details: Details,
                                      request_iterator: AsyncIterable[object] | Iterable[object]) -> Any:
        return await continuation(self._details(details), request_iterator)


def client_credentials() -> grpc.ChannelCredentials | None:
    """TLS for calls to other services: trusting FTLAB_TLS_CA, or, in a deployment whose services
    serve TLS (FTLAB_TLS_CERT) and name no CA, their own certificate (which works when it is
    self-signed, and otherwise fails with a reason that says what to set)."""
    tls = settings.tls()
    ca = tls.ca or tls.cert
    if not ca:
        return None
    cert, key = tls.client_cert, tls.client_key
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca).read_bytes(),
        private_key=Path(key).read_bytes() if key else None,
        certificate_chain=Path(cert).read_bytes() if cert else None)


def internal_channel(address: str, options: Sequence[tuple[str, Any]] | None = None) -> grpc.aio.Channel:
    metadata = service_metadata()
    interceptors = [_ServiceToken(metadata)] if metadata else None
    credentials = None if address.startswith("unix:") else client_credentials()  # a private local socket
    if credentials is not None:
        return grpc.aio.secure_channel(address, credentials, options=options, interceptors=interceptors)
    return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
