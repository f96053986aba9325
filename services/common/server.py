"""Server bootstrap shared by every service: grpc.aio server, health, reflection, graceful stop.

    server, port = build_server([registration, ...], "[::]:0")
    await server.start(); ...; await shutdown(server, grace)
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common import settings
from services.common.interceptors import ServiceInterceptor

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
LIVENESS = "liveness"
SYNC_HANDLER_THREADS = 16  # concurrent downloads (each holds a thread while it streams)


@dataclass
class Registration:
    """One service to serve: its full name, its servicer, and the generated add_*_to_server."""

    name: str
    servicer: Any
    add: Callable[[Any, grpc.aio.Server], None]


@dataclass
class Built:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer


def build_server(services: list[Registration], address: str, max_concurrent_rpcs: int = 1000) -> Built:
    """A grpc.aio server with the services, health (per service and overall) and reflection."""
    server = grpc.aio.server(
        # handlers written as plain (blocking) functions run here: bulk streams (artifact downloads) go
        # about twice as fast from a thread as from an async generator on the event loop
        migration_thread_pool=futures.ThreadPoolExecutor(max_workers=SYNC_HANDLER_THREADS,
                                                         thread_name_prefix="grpc-sync"),
        interceptors=[ServiceInterceptor()],
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    for s in services:
        s.add(s.servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [s.name for s in services] + [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                                          reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    credentials = server_credentials()
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"cannot listen on {address}")
    return Built(server, port, health_servicer)


def server_credentials() -> grpc.ServerCredentials | None:
    """TLS when FTLAB_TLS_CERT and FTLAB_TLS_KEY are set; with FTLAB_TLS_CLIENT_CA too, callers must
    present a certificate that CA signed (mutual TLS, e.g. on trainers, which only services call)."""
    tls = settings.tls()
    cert, key = tls.cert, tls.key
    if not (cert and key):
        return None
    client_ca = tls.client_ca
    return grpc.ssl_server_credentials([(Path(key).read_bytes(), Path(cert).read_bytes())],
                                       root_certificates=Path(client_ca).read_bytes() if client_ca else None,
                                       require_client_auth=bool(client_ca))


class HealthBoard:
    """The health of the services one process serves: each component SERVING unless it said it
    cannot work (a required peer out of reach), and the process ("") SERVING only when all are."""

    def __init__(self, built: Built, names: dict[str, list[str]]) -> None:
        self.built, self.names = built, names
        self.down: set[str] = set()
        self.started = False

    def setter(self, component: str) -> Callable[[bool], Awaitable[None]]:
        async def set_serving(serving: bool) -> None:
            (self.down.discard if serving else self.down.add)(component)
            if self.started:
                await self._publish(component)
        return set_serving

    async def _publish(self, component: str) -> None:
        status = health_pb2.HealthCheckResponse
        for name in self.names[component]:
            await self.built.health.set(name, status.NOT_SERVING if component in self.down else status.SERVING)
        await self.built.health.set("", status.NOT_SERVING if self.down else status.SERVING)

    async def start(self) -> None:
        self.started = True
        # "liveness": SERVING while the process runs, whatever its peers do (what a liveness probe asks)
        await self.built.health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        for component in self.names:
            await self._publish(component)


async def wait_for_signal() -> None:
    """Return on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("signal received; shutting down")


async def shutdown(built: Built, grace: float) -> None:
    """Report NOT_SERVING, let calls in flight finish for `grace` seconds, then stop."""
    await built.health.enter_graceful_shutdown()
    await built.server.stop(grace)
