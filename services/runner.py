"""Runs any set of the four services in one process: all of them (`ftlab serve`, the embedded
default: SQLite and a local directory) or one (`python -m services.<name>`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

from services import serve_settings
from services.common import metrics as common_metrics
from services.common import server as bootstrap
from services.common import settings as common_settings
from services.common.settings import Paths
from services.serve_settings import Settings

if TYPE_CHECKING:  # each is imported when its component is asked for
    from services.analyzer.app import AnalyzerApp
    from services.artifacts.app import ArtifactsApp
    from services.openai_gateway.server import Served
    from services.scheduler.app import SchedulerApp
    from services.scheduler.gateway import Forwarder
    from services.trainer.app import TrainerApp

Component = Literal["scheduler", "trainer", "analyzer", "artifacts"]
COMPONENTS: tuple[Component, ...] = ("scheduler", "trainer", "analyzer", "artifacts")
log = logging.getLogger("ftlab")


class Apps(TypedDict, total=False):
    """The apps of one process, by component."""

    scheduler: SchedulerApp
    trainer: TrainerApp
    analyzer: AnalyzerApp
    artifacts: ArtifactsApp


def _local_socket(built: bootstrap.Built, components: int) -> str:
    """With TLS on and no CA to verify it by (FTLAB_TLS_CA unset), components in one process could not
    trust each other over TCP: they talk over a Unix socket only this user can open instead."""
    tls = common_settings.tls()
    if components < 2 or not tls.cert or tls.ca:
        return ""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="ftlab-")) / "grpc.sock"  # a folder only this user may enter
    try:
        if built.server.add_insecure_port(f"unix:{path}") == 0:
            raise RuntimeError(f"cannot listen on {path}")
    except RuntimeError as exc:
        log.warning("no private socket (%s): the components of this process call each other over TLS", exc)
        return ""
    return f"unix:{path}"


class Running:
    """The services of one process, started: its server, port and apps."""

    def __init__(self, built: bootstrap.Built, apps: Apps, metrics_port: int, paths: Paths, local: str = "") -> None:
        self.built, self.apps, self.metrics_port, self.paths = built, apps, metrics_port, paths
        self.local = local  # the private socket of this process's components, if any
        self.forwarders: list[Forwarder] = []  # public services of other processes, served here (gateway.py)
        self.openai: Served | None = None  # the OpenAI-compatible REST gateway, in ftlab serve

    @property
    def port(self) -> int:
        return self.built.port

    @property
    def openai_port(self) -> int | None:
        return self.openai.port if self.openai is not None else None

    async def stop(self, grace: float) -> None:
        if self.openai is not None:
            await self.openai.stop()
        apps = self.apps
        if "scheduler" in apps:
            await apps["scheduler"].dispatcher_pause()
        if "trainer" in apps:
            await apps["trainer"].stop(grace=grace)
        await bootstrap.shutdown(self.built, grace)
        if "scheduler" in apps:
            await apps["scheduler"].stop()
        if "artifacts" in apps:
            await apps["artifacts"].stop()
        if "analyzer" in apps:
            await apps["analyzer"].stop()
        for forwarder in self.forwarders:
            await forwarder.close()
        if self.local:
            import shutil

            shutil.rmtree(Path(self.local.removeprefix("unix:")).parent, ignore_errors=True)


def _forwarders(components: list[str], s: Settings) -> list[Forwarder]:
    """A scheduler without the analyzer or the artifacts service in its process serves their public
    APIs by forwarding to them (--analyzer, --artifacts): users need the scheduler's address only."""
    if "scheduler" not in components:
        return []
    from ftlab.v1 import analyzer_pb2, artifact_service_pb2
    from services.scheduler.gateway import Forwarder

    out = []
    for component, address, module, name in (
            ("analyzer", s.scheduler.analyzer, analyzer_pb2, "AnalyzerService"),
            ("artifacts", s.scheduler.artifacts, artifact_service_pb2, "ArtifactService")):
        if component not in components and address:
            out.append(Forwarder(module.DESCRIPTOR.services_by_name[name], address))
    return out


async def start(components: list[str], s: Settings) -> Running:
    paths = s.paths.ensure()
    apps: Apps = {}
    if "scheduler" in components:
        from services.scheduler.app import SchedulerApp

        apps["scheduler"] = SchedulerApp(s.scheduler.database_url, lease_seconds=s.scheduler.lease_seconds,
                                         heartbeat_interval=s.scheduler.heartbeat_seconds,
                                         max_running_per_user=s.scheduler.max_running_per_user,
                                         scheduler_id=s.scheduler.scheduler_id)
    if "trainer" in components:
        from services.trainer.app import TrainerApp

        apps["trainer"] = TrainerApp(paths, worker_id=s.trainer.worker_id, max_runs=s.trainer.max_runs,
                                     preload=s.trainer.preload, cpu_threads=s.trainer.cpu_threads,
                                     generation_idle_seconds=s.trainer.generation_idle_seconds)
    if "analyzer" in components:
        from services.analyzer.app import AnalyzerApp

        apps["analyzer"] = AnalyzerApp()
    if "artifacts" in components:
        from services.artifacts.app import ArtifactsApp

        apps["artifacts"] = ArtifactsApp(paths)

    by_app = {name: apps[name].registrations() for name in COMPONENTS if name in apps}
    forwarders = _forwarders(components, s)
    if forwarders:  # the scheduler as the one public address of services run apart
        by_app["scheduler"] = by_app["scheduler"] + [f.registration() for f in forwarders]
    registrations = [r for rs in by_app.values() for r in rs]
    built = bootstrap.build_server(registrations, f"{s.server.host}:{s.server.port}")
    here = f"127.0.0.1:{built.port}"
    local = _local_socket(built, len(apps))
    if local:  # TLS that this process could not verify itself: its components talk over a private socket
        here = local
    await built.server.start()
    metrics_port = common_metrics.serve_metrics(s.server.metrics_port, s.server.host)
    board = bootstrap.HealthBoard(built, {name: [r.name for r in rs] for name, rs in by_app.items()})
    if "analyzer" in apps:
        apps["analyzer"].start()
    if "scheduler" in apps:
        analyzer = s.scheduler.analyzer or (here if "analyzer" in apps else None)
        if analyzer:
            apps["scheduler"].analyze_failures_at(analyzer)
        apps["scheduler"].start()
    if "artifacts" in apps:
        apps["artifacts"].jobs.address = s.artifacts.scheduler or (here if "scheduler" in apps else "127.0.0.1:50051")
        apps["artifacts"].on_health = board.setter("artifacts")
        apps["artifacts"].start()
    if "trainer" in apps:
        trainer = apps["trainer"]
        trainer.scheduler_address = s.trainer.scheduler or (here if "scheduler" in apps else None)
        trainer.on_health = board.setter("trainer")
        trainer.start(here if local and "scheduler" in apps and not s.trainer.scheduler
                      else f"{s.trainer.advertise_host}:{built.port}")
    await board.start()
    log.info("serving %s on %s:%d, metrics on port %d, data in %s",
             ", ".join(apps), s.server.host, built.port, metrics_port, paths.root)
    running = Running(built, apps, metrics_port, paths, local)
    running.forwarders = forwarders
    if "scheduler" in apps and len(components) > 1 and s.server.openai_port >= 0:  # ftlab serve
        from services.openai_gateway.server import start as start_gateway

        try:
            running.openai = await start_gateway(here, s.server.host, s.server.openai_port)
            log.info("OpenAI-compatible gateway on %s:%d", s.server.host, running.openai.port)
        except (OSError, SystemExit, RuntimeError) as exc:  # the gRPC services serve on without it
            log.warning("no OpenAI-compatible gateway: port %d: %s; choose another with --openai-port",
                        s.server.openai_port, exc)
    return running


async def serve(components: list[str], s: Settings) -> None:
    running = await start(components, s)
    if s.server.ready_file:
        tmp = Path(s.server.ready_file + ".tmp")
        tmp.write_text(json.dumps({"port": running.port, "metrics_port": running.metrics_port, "pid": os.getpid(),
                                   "openai_port": running.openai_port}))
        tmp.replace(s.server.ready_file)
    await bootstrap.wait_for_signal()
    await running.stop(s.server.shutdown_grace)
    log.info("stopped")


def parser_for(components: list[str], default_port: int = 50051, default_metrics_port: int = 9464) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ftlab serve" if len(components) > 1 else f"python -m services.{components[0]}",
                                     description=f"Run FineTune Lab's {', '.join(components)}.")
    serve_settings.add_arguments(parser, default_port, default_metrics_port)
    return parser


def main(components: list[str], argv: list[str] | None = None, default_port: int = 50051,
         default_metrics_port: int = 9464) -> None:
    settings = serve_settings.from_args(parser_for(components, default_port, default_metrics_port).parse_args(argv))
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    asyncio.run(serve(components, settings))
