"""Whether a service's required peer answers (a trainer's scheduler, the artifacts service's
scheduler), said once in words a person understands when that changes, and reported in gRPC health
(NOT_SERVING while the peer cannot be reached), so that a deployment that looks up is up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.channels import internal_channel

log = logging.getLogger(__name__)


def why(exc: grpc.aio.AioRpcError) -> str:
    """What a failed call to a peer says, for a person."""
    details = (exc.details() or "").lower()
    code = exc.code()
    if "certificate" in details or "ssl" in details or "handshake" in details or "tls" in details:
        return ("its TLS certificate is not trusted here: set FTLAB_TLS_CA to the CA that signed it (or to the "
                "certificate itself when it is self-signed)")
    if "socket closed" in details:
        return ("it closed the connection at once: if it serves TLS, set FTLAB_TLS_CA to the CA that signed its "
                "certificate")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return "it refuses this service's token: set FTLAB_SERVICE_TOKEN to the one it knows"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "it did not answer in time"
    if code == grpc.StatusCode.UNAVAILABLE:
        return "nothing answers there (is it running, and is the address right?)"
    return f"it answered {code.name}: {exc.details()}"


class Peer:
    """One required peer of one service; `on_change(serving)` sets the service's health."""

    def __init__(self, service: str, peer: str, address: str,
                 on_change: Callable[[bool], Awaitable[None]] | None = None) -> None:
        self.service, self.peer, self.address = service, peer, address
        self.on_change = on_change
        self.reachable: bool | None = None  # unknown until the first try

    async def _set(self, reachable: bool) -> None:
        if self.on_change is not None:
            await self.on_change(reachable)

    async def reached(self) -> None:
        if self.reachable is not True:
            if self.reachable is False:
                log.info("%s reaches its %s at %s again", self.service, self.peer, self.address)
            self.reachable = True
            await self._set(True)

    async def failed(self, exc: grpc.aio.AioRpcError) -> None:
        if self.reachable is not False:
            self.reachable = False
            log.error("%s cannot reach its %s at %s: %s; it reports NOT_SERVING until it can",
                      self.service, self.peer, self.address, why(exc))
            await self._set(False)

    async def watch(self, interval: float = 5.0) -> None:
        """Ask the peer's gRPC health every `interval` seconds, for a service that has no other
        regular call to it."""
        async with internal_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                    await self.reached()
                except grpc.aio.AioRpcError as exc:
                    await self.failed(exc)
                await asyncio.sleep(interval)
