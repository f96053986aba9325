"""The settings of `ftlab serve` and of each service run alone: one frozen class per service, built
in one place from the command line, whose defaults are the FTLAB_* variables (flags win). The
process-wide ones every service reads (the data directory, TLS, tokens, limits) are in
services/common/settings.py."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import TypeVar, overload

from services.common.settings import Paths
from services.common.settings import paths as default_paths

T = TypeVar("T")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"  # the interface to listen on
    port: int = 50051  # gRPC (0 picks a free one)
    metrics_port: int = 9464  # Prometheus /metrics (0 picks a free one)
    shutdown_grace: float = 10.0  # seconds to finish calls on SIGTERM
    ready_file: str | None = None  # where the bound ports are written as JSON once serving
    openai_port: int = 8080  # ftlab serve's OpenAI-compatible REST gateway (0: a free port; -1: none)


@dataclass(frozen=True)
class SchedulerSettings:
    database_url: str  # SQLAlchemy URL
    lease_seconds: float = 10.0  # a trainer silent this long counts as lost
    heartbeat_seconds: float = 2.0  # the heartbeat interval asked of trainers
    scheduler_id: str = ""  # distinct per scheduler sharing one database ("": the host name)
    max_running_per_user: int = 0  # jobs one user may have running at once (0: no limit)
    analyzer: str | None = None  # the AnalyzerService (None: this process, when it runs one)
    artifacts: str | None = None  # the artifacts service run apart, whose public API the scheduler serves


@dataclass(frozen=True)
class TrainerSettings:
    scheduler: str | None = None  # the scheduler to register with (None: this process, when it runs one)
    advertise_host: str = "127.0.0.1"  # the host name the scheduler reaches this trainer at
    worker_id: str | None = None  # a stable worker id (None: host name and process id)
    max_runs: int | None = None  # runs at once (None: its GPUs, or 1)
    cpu_threads: int | None = None  # torch threads per run (None: the machine's CPUs / max_runs)
    preload: bool = True  # fork runs from a process that imported torch already
    generation_idle_seconds: float = 300.0  # a generation process idle this long ends


@dataclass(frozen=True)
class ArtifactsSettings:
    scheduler: str | None = None  # the scheduler that says whose job is whose (None: this process, or :50051)


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    scheduler: SchedulerSettings
    trainer: TrainerSettings
    artifacts: ArtifactsSettings
    paths: Paths
    log_level: str = "INFO"


@overload
def _env(name: str) -> str | None: ...
@overload
def _env(name: str, default: T) -> str | T: ...
def _env(name: str, default: object = None) -> object:
    return os.environ.get(name) or default


def add_arguments(parser: argparse.ArgumentParser, default_port: int, default_metrics_port: int) -> None:
    """The flags, one group per service (every service accepts all of them, so that one command line
    or manifest serves any split of the services)."""
    g = parser.add_argument_group("server")
    g.add_argument("--host", default=_env("FTLAB_HOST", "127.0.0.1"), help="interface to listen on (FTLAB_HOST)")
    g.add_argument("--port", type=int, default=default_port, help="gRPC port (0 picks a free one)")
    g.add_argument("--metrics-port", type=int, default=default_metrics_port,
                   help="port of the Prometheus /metrics endpoint (0 picks a free one)")
    g.add_argument("--shutdown-grace", type=float, default=10.0, help="seconds to finish calls on SIGTERM")
    g.add_argument("--ready-file", default=None, help="write the bound ports here as JSON once serving")
    g.add_argument("--openai-port", type=int, default=int(_env("FTLAB_OPENAI_PORT", 8080)),
                   help="ftlab serve: the port of the OpenAI-compatible REST gateway (FTLAB_OPENAI_PORT; 0 picks a "
                        "free one, -1 runs none)")

    g = parser.add_argument_group("scheduler")
    g.add_argument("--database-url", default=None,
                   help="SQLAlchemy URL (FTLAB_DATABASE_URL; default: SQLite in FTLAB_HOME)")
    g.add_argument("--lease-seconds", type=float, default=10.0, help="a trainer silent this long counts as lost")
    g.add_argument("--heartbeat-seconds", type=float, default=2.0, help="heartbeat interval asked of trainers")
    g.add_argument("--scheduler-id", default=_env("FTLAB_SCHEDULER_ID", ""),
                   help="stable id, distinct per scheduler sharing one database (FTLAB_SCHEDULER_ID; default: host name)")
    g.add_argument("--max-running-per-user", type=int, default=int(_env("FTLAB_MAX_RUNNING_PER_USER", 0)),
                   help="jobs one user may have running at once (FTLAB_MAX_RUNNING_PER_USER; 0: no limit)")
    g.add_argument("--analyzer", default=_env("FTLAB_ANALYZER_ADDRESS"),
                   help="the AnalyzerService that explains failed jobs (FTLAB_ANALYZER_ADDRESS; default: this "
                        "process, when it runs one)")
    g.add_argument("--artifacts", default=_env("FTLAB_ARTIFACTS_ADDRESS"),
                   help="the artifacts service's address, when it runs apart: the scheduler then serves its API "
                        "too, so users need one address (FTLAB_ARTIFACTS_ADDRESS)")

    g = parser.add_argument_group("trainer and artifacts")
    g.add_argument("--scheduler", default=_env("FTLAB_SCHEDULER_ADDRESS"),
                   help="trainer: the scheduler to register with; artifacts: the scheduler that says whose job is "
                        "whose (FTLAB_SCHEDULER_ADDRESS; default: this process when it runs one, else 127.0.0.1:50051)")

    g = parser.add_argument_group("trainer")
    g.add_argument("--advertise-host", default=_env("FTLAB_ADVERTISE_HOST", "127.0.0.1"),
                   help="host name the scheduler reaches this trainer at (FTLAB_ADVERTISE_HOST)")
    g.add_argument("--worker-id", default=None, help="stable worker id")
    g.add_argument("--max-runs", type=int, default=None, help="runs at once (default: GPUs, or 1)")
    g.add_argument("--cpu-threads", type=int, default=None,
                   help="torch threads per run (default: this machine's CPUs / --max-runs; give each trainer its "
                        "share when several share a machine)")
    g.add_argument("--generation-idle-seconds", type=float, default=300.0,
                   help="a process loaded to generate text (GenerateText) ends after this long unused")
    g.add_argument("--no-preload", dest="preload", action="store_false",
                   help="exec each run's process instead of forking it from a process that has imported torch "
                        "already (saves its memory; each run starts seconds later)")


def from_args(args: argparse.Namespace) -> Settings:
    """The settings of one process, from its parsed command line."""
    paths = default_paths()
    return Settings(
        server=ServerSettings(args.host, args.port, args.metrics_port, args.shutdown_grace, args.ready_file,
                              args.openai_port),
        scheduler=SchedulerSettings(args.database_url or paths.database_url, args.lease_seconds,
                                    args.heartbeat_seconds, args.scheduler_id, args.max_running_per_user,
                                    args.analyzer, args.artifacts),
        trainer=TrainerSettings(args.scheduler, args.advertise_host, args.worker_id, args.max_runs, args.cpu_threads,
                                args.preload, args.generation_idle_seconds),
        artifacts=ArtifactsSettings(args.scheduler),
        paths=paths,
        log_level=_env("FTLAB_LOG_LEVEL", "INFO"),
    )
