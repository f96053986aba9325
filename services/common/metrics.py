"""Metrics every service exports, and the /metrics HTTP endpoint.

Metrics live in the long-lived service processes only (never in training children: multiprocess
mode leaks files of dead processes). Names follow Prometheus practice: `ftlab_` prefix, base units.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server

GRPC_HANDLED = Counter(
    "ftlab_grpc_server_handled",
    "gRPC calls completed, by service, method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_SECONDS = Histogram(
    "ftlab_grpc_server_handling_seconds",
    "Time from call start to completion (whole stream for streaming calls), by service and method.",
    ["grpc_service", "grpc_method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)


def record_rpc(service: str, method: str, code: str, seconds: float) -> None:
    GRPC_HANDLED.labels(service, method, code).inc()
    GRPC_SECONDS.labels(service, method).observe(seconds)


def serve_metrics(port: int, host: str = "0.0.0.0") -> int:
    """Start the /metrics endpoint in a background thread; returns the bound port (0 picks a free one)."""
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    bound: int = server.server_port
    return bound
