"""Runs any set of the four services in one process: all of them (`ftlab serve`, the embedded
default: SQLite and a local directory) or one (`python -m services.<name>`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from pathlib import Path

from services.common import metrics as common_metrics
from services.common import server as bootstrap
from services.common.settings import paths as default_paths

COMPONENTS = ("scheduler", "trainer", "analyzer", "artifacts")
log = logging.getLogger("ftlab")


def add_arguments(parser: argparse.ArgumentParser, default_port: int, default_metrics_port: int) -> None:
    parser.add_argument("--host", default=os.environ.get("FTLAB_HOST", "127.0.0.1"), help="interface to listen on")
    parser.add_argument("--port", type=int, default=default_port, help="gRPC port (0 picks a free one)")
    parser.add_argument("--metrics-port", type=int, default=default_metrics_port,
                        help="port of the Prometheus /metrics endpoint (0 picks a free one)")
    parser.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: SQLite in FTLAB_HOME)")
    parser.add_argument("--scheduler", default=os.environ.get("FTLAB_SCHEDULER_ADDRESS"),
                        help="trainer: the scheduler to register with; artifacts: the scheduler that says whose "
                             "job is whose (default: this process when it runs one, else 127.0.0.1:50051)")
    parser.add_argument("--advertise-host", default=os.environ.get("FTLAB_ADVERTISE_HOST", "127.0.0.1"),
                        help="trainer: host name the scheduler reaches this trainer at")
    parser.add_argument("--analyzer", default=os.environ.get("FTLAB_ANALYZER_ADDRESS"),
                        help="scheduler: the AnalyzerService that explains failed jobs (default: this process, when "
                             "it runs one)")
    parser.add_argument("--artifacts", default=os.environ.get("FTLAB_ARTIFACTS_ADDRESS"),
                        help="scheduler: the artifacts service's address, when it runs apart: the scheduler "
                             "then serves its API too, so users need one address")
    parser.add_argument("--worker-id", default=None, help="trainer: stable worker id")
    parser.add_argument("--max-runs", type=int, default=None, help="trainer: runs at once (default: GPUs, or 1)")
    parser.add_argument("--cpu-threads", type=int, default=None,
                        help="trainer: torch threads per run (default: this machine's CPUs / --max-runs; "
                             "give each trainer its share when several share a machine)")
    parser.add_argument("--no-preload", dest="preload", action="store_false",
                        help="trainer: exec each run's process instead of forking it from a process that has "
                             "imported torch already (saves its memory; each run starts seconds later)")
    parser.add_argument("--lease-seconds", type=float, default=10.0,
                        help="scheduler: a trainer silent this long counts as lost")
    parser.add_argument("--heartbeat-seconds", type=float, default=2.0, help="scheduler: heartbeat interval asked of trainers")
    parser.add_argument("--scheduler-id", default=os.environ.get("FTLAB_SCHEDULER_ID", ""),
                        help="scheduler: stable id, distinct per scheduler sharing one database (default: host name)")
    parser.add_argument("--max-running-per-user", type=int, default=int(os.environ.get("FTLAB_MAX_RUNNING_PER_USER", 0)),
                        help="scheduler: jobs one user may have running at once (0: no limit)")
    parser.add_argument("--shutdown-grace", type=float, default=10.0, help="seconds to finish calls on SIGTERM")
    parser.add_argument("--ready-file", default=None, help="write the bound ports here as JSON once serving")


def _local_socket(built, components: int) -> str:
    """With TLS on and no CA to verify it by (FTLAB_TLS_CA unset), components in one process could not
    trust each other over TCP: they talk over a Unix socket only this user can open instead."""
    if components < 2 or not os.environ.get("FTLAB_TLS_CERT") or os.environ.get("FTLAB_TLS_CA"):
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

    def __init__(self, built, apps: dict[str, object], metrics_port: int, paths, local: str = "") -> None:
        self.built, self.apps, self.metrics_port, self.paths = built, apps, metrics_port, paths
        self.local = local  # the private socket of this process's components, if any
        self.forwarders: list = []  # public services of other processes, served here (gateway.py)

    @property
    def port(self) -> int:
        return self.built.port

    async def stop(self, grace: float) -> None:
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


def _forwarders(components: list[str], args: argparse.Namespace) -> list:
    """A scheduler without the analyzer or the artifacts service in its process serves their public
    APIs by forwarding to them (--analyzer, --artifacts): users need the scheduler's address only."""
    if "scheduler" not in components:
        return []
    from ftlab.v1 import analyzer_pb2, artifact_service_pb2
    from services.scheduler.gateway import Forwarder

    out = []
    for component, address, module, name in (
            ("analyzer", args.analyzer, analyzer_pb2, "AnalyzerService"),
            ("artifacts", args.artifacts, artifact_service_pb2, "ArtifactService")):
        if component not in components and address:
            out.append(Forwarder(module.DESCRIPTOR.services_by_name[name], address))
    return out


async def start(components: list[str], args: argparse.Namespace) -> Running:
    paths = default_paths().ensure()
    apps: dict[str, object] = {}
    if "scheduler" in components:
        from services.scheduler.app import SchedulerApp

        apps["scheduler"] = SchedulerApp(args.database_url or paths.database_url, lease_seconds=args.lease_seconds,
                                         heartbeat_interval=args.heartbeat_seconds,
                                         max_running_per_user=args.max_running_per_user,
                                         scheduler_id=args.scheduler_id)
    if "trainer" in components:
        from services.trainer.app import TrainerApp

        apps["trainer"] = TrainerApp(paths, worker_id=args.worker_id, max_runs=args.max_runs, preload=args.preload,
                                     cpu_threads=args.cpu_threads)
    if "analyzer" in components:
        from services.analyzer.app import AnalyzerApp

        apps["analyzer"] = AnalyzerApp()
    if "artifacts" in components:
        from services.artifacts.app import ArtifactsApp

        apps["artifacts"] = ArtifactsApp(paths)

    by_app = {name: app.registrations() for name, app in apps.items()}
    forwarders = _forwarders(components, args)
    if forwarders:  # the scheduler as the one public address of services run apart
        by_app["scheduler"] = by_app["scheduler"] + [f.registration() for f in forwarders]
    registrations = [r for rs in by_app.values() for r in rs]
    built = bootstrap.build_server(registrations, f"{args.host}:{args.port}")
    here = f"127.0.0.1:{built.port}"
    local = _local_socket(built, len(apps))
    if local:  # TLS that this process could not verify itself: its components talk over a private socket
        here = local
    await built.server.start()
    metrics_port = common_metrics.serve_metrics(args.metrics_port, args.host)
    board = bootstrap.HealthBoard(built, {name: [r.name for r in rs] for name, rs in by_app.items()})
    if "analyzer" in apps:
        apps["analyzer"].start()
    if "scheduler" in apps:
        analyzer = args.analyzer or (here if "analyzer" in apps else None)
        if analyzer:
            apps["scheduler"].analyze_failures_at(analyzer)
        apps["scheduler"].start()
    if "artifacts" in apps:
        apps["artifacts"].jobs.address = args.scheduler or (here if "scheduler" in apps else "127.0.0.1:50051")
        apps["artifacts"].on_health = board.setter("artifacts")
        apps["artifacts"].start()
    if "trainer" in apps:
        trainer = apps["trainer"]
        trainer.scheduler_address = args.scheduler or (here if "scheduler" in apps else None)
        trainer.on_health = board.setter("trainer")
        trainer.start(here if local and "scheduler" in apps and not args.scheduler
                      else f"{args.advertise_host}:{built.port}")
    await board.start()
    log.info("serving %s on %s:%d, metrics on port %d, data in %s",
             ", ".join(apps), args.host, built.port, metrics_port, paths.root)
    running = Running(built, apps, metrics_port, paths, local)
    running.forwarders = forwarders
    return running


async def serve(components: list[str], args: argparse.Namespace) -> None:
    running = await start(components, args)
    if args.ready_file:
        tmp = Path(args.ready_file + ".tmp")
        tmp.write_text(json.dumps({"port": running.port, "metrics_port": running.metrics_port, "pid": os.getpid()}))
        tmp.replace(args.ready_file)
    await bootstrap.wait_for_signal()
    await running.stop(args.shutdown_grace)
    log.info("stopped")


def parser_for(components: list[str], default_port: int = 50051, default_metrics_port: int = 9464) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ftlab serve" if len(components) > 1 else f"python -m services.{components[0]}",
                                     description=f"Run FineTune Lab's {', '.join(components)}.")
    add_arguments(parser, default_port, default_metrics_port)
    return parser


def main(components: list[str], argv: list[str] | None = None, default_port: int = 50051,
         default_metrics_port: int = 9464) -> None:
    args = parser_for(components, default_port, default_metrics_port).parse_args(argv)
    logging.basicConfig(level=os.environ.get("FTLAB_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    asyncio.run(serve(components, args))
