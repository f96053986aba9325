"""The client's connection: a gRPC channel (TLS where a CA is given), the caller's identity on
every call, and one call helper with a deadline and retries for idempotent calls."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import Message

from ftlab.errors import FtlabError
from ftlab.v1 import analyzer_pb2_grpc, artifact_service_pb2_grpc, job_service_pb2_grpc

if TYPE_CHECKING:
    from typing_extensions import Self  # typing's own from Python 3.11

DEFAULT_ADDRESS = "localhost:50051"
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class Connection:
    """A channel to a FineTune Lab server, the caller's credentials, and calls with a deadline that
    are retried where they are safe to repeat."""

    def __init__(self, address: str | None = None, *, user: str | None = None, token: str | None = None,
                 tls_ca: str | None = None, timeout: float = 30.0) -> None:
        """`token` (or FTLAB_TOKEN): a bearer token, for a server with auth on; `user` (or FTLAB_USER)
        names the caller of a server without. `tls_ca` (or FTLAB_TLS_CA): the CA file of a TLS server."""
        self.address = address or os.environ.get("FTLAB_ADDRESS") or DEFAULT_ADDRESS
        self.timeout = timeout
        token = token or os.environ.get("FTLAB_TOKEN")
        self._metadata = ((("authorization", f"Bearer {token}"),) if token else
                          (("x-ftlab-user", user or os.environ.get("FTLAB_USER", "default")),))
        options = [("grpc.max_receive_message_length", 64 << 20)]
        tls_ca = tls_ca or os.environ.get("FTLAB_TLS_CA")
        if tls_ca:
            with open(tls_ca, "rb") as f:
                credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
            self._channel = grpc.secure_channel(self.address, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(self.address, options=options)
        self.jobs = job_service_pb2_grpc.JobServiceStub(self._channel)
        self.artifacts = artifact_service_pb2_grpc.ArtifactServiceStub(self._channel)
        self.analyzer = analyzer_pb2_grpc.AnalyzerServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Callable[..., Any], request: Message, *, idempotent: bool, attempts: int = 3) -> Any:
        """`method(request)`, retried where `idempotent`; gRPC is untyped here, so the caller names the reply's type."""
        for attempt in range(attempts if idempotent else 1):
            try:
                return method(request, timeout=self.timeout, metadata=self._metadata)
            except grpc.RpcError as err:
                if not idempotent or err.code() not in RETRYABLE or attempt == attempts - 1:
                    raise FtlabError.from_rpc(err) from None
                time.sleep(0.2 * 2 ** attempt)
        raise AssertionError("unreachable")
