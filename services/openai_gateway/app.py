"""The OpenAI-compatible REST gateway: OpenAI's fine-tuning API (files, jobs, events, checkpoints) and
chat completions with fine-tuned models, as a client of FineTune Lab's public gRPC services. It keeps
no state: every request is the caller's, with the caller's own token, to the scheduler's address
(which serves the artifacts' API too when the services run apart)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated

import grpc
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ftlab.v1 import artifact_service_pb2_grpc, config_pb2, job_service_pb2, job_service_pb2_grpc
from services.common.channels import client_credentials
from services.openai_gateway import errors
from services.openai_gateway.shapes import Invalid

log = logging.getLogger(__name__)
Metadata = tuple[tuple[str, str], ...]


@dataclass
class Gateway:
    """What every route needs: the services' stubs, the model aliases, the upload limit."""

    target: str
    aliases: dict[str, str] = field(default_factory=dict)
    max_upload_bytes: int = 20 << 30
    channel: grpc.aio.Channel | None = None
    _template: config_pb2.TrainingConfig | None = None

    def open(self) -> None:
        credentials = None if self.target.startswith("unix:") else client_credentials()
        options = [("grpc.max_receive_message_length", 32 << 20)]
        self.channel = grpc.aio.secure_channel(self.target, credentials, options=options) if credentials \
            else grpc.aio.insecure_channel(self.target, options=options)

    @property
    def jobs(self) -> job_service_pb2_grpc.JobServiceStub:
        return job_service_pb2_grpc.JobServiceStub(self.channel)

    @property
    def artifacts(self) -> artifact_service_pb2_grpc.ArtifactServiceStub:
        return artifact_service_pb2_grpc.ArtifactServiceStub(self.channel)

    async def template(self, metadata: Metadata) -> config_pb2.TrainingConfig:
        """The basic template's resolved config (its learning rate is what a multiplier scales)."""
        if self._template is None:
            reply = await self.jobs.ListTemplates(job_service_pb2.ListTemplatesRequest(), metadata=metadata, timeout=30)
            self._template = next((t.resolved for t in reply.templates if t.name == "basic"), config_pb2.TrainingConfig())
        return self._template


def caller(request: Request) -> Metadata:
    """The caller's credentials, passed on as they came: `Authorization: Bearer` (the same tokens as
    the gRPC services'), and on a server without tokens the user it names (`X-FTLAB-User`)."""
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer ") or not header[7:].strip():
        raise Invalid("You didn't provide an API key. You need to provide your API key in an Authorization header "
                      "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", status=401, code="invalid_api_key")
    out: list[tuple[str, str]] = [("authorization", header)]
    if request.headers.get("x-ftlab-user"):
        out.append(("x-ftlab-user", request.headers["x-ftlab-user"]))
    return tuple(out)


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


# a route's parameters: the caller's credentials and the gateway
Who = Annotated[Metadata, Depends(caller)]
Gw = Annotated[Gateway, Depends(gateway_of)]


def create_app(gateway: Gateway) -> FastAPI:
    from services.openai_gateway import chat, files, jobs, metrics

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if gateway.channel is None:
            gateway.open()
        yield
        if gateway.channel is not None:
            await gateway.channel.close()

    app = FastAPI(title="FineTune Lab: OpenAI-compatible fine-tuning API", lifespan=lifespan,
                  description="OpenAI's fine-tuning and chat completions APIs over FineTune Lab's services.")
    app.state.gateway = gateway
    app.add_middleware(metrics.Measured)
    app.add_exception_handler(Invalid, errors.on_invalid)
    app.add_exception_handler(grpc.aio.AioRpcError, errors.on_rpc)
    app.add_exception_handler(RequestValidationError, errors.on_validation)
    for module in (files, jobs, chat):
        app.include_router(module.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        """Ready when the scheduler behind answers its health check as SERVING (probes call this)."""
        assert gateway.channel is not None
        try:
            reply = await health_pb2_grpc.HealthStub(gateway.channel).Check(health_pb2.HealthCheckRequest(),
                                                                             timeout=5)
            serving = reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.aio.AioRpcError:
            serving = False
        return JSONResponse({"status": "ok" if serving else "the scheduler is not serving"},
                            status_code=200 if serving else 503)

    return app
