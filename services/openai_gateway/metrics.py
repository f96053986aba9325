"""The gateway's Prometheus metrics: requests by route and HTTP status, and their latency (the whole
response, streams included). In `ftlab serve` they join the process's /metrics; alone, the gateway
serves them on --metrics-port."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter("ftlab_openai_requests", "Requests to the OpenAI-compatible gateway, by method, route "
                        "(its template, e.g. /v1/fine_tuning/jobs/{job_id}) and HTTP status.",
                        ["method", "route", "status"])
HTTP_SECONDS = Histogram("ftlab_openai_request_seconds", "Time to the last byte of a gateway response (whole "
                         "stream for server-sent events), by method and route.", ["method", "route"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600))


class Measured:
    """ASGI middleware: each HTTP request counted and timed, by its route's template (bounded labels,
    never a job or file id), to the last byte of its response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:  # the router has put the matched route into the scope by now
            route = str(getattr(scope.get("route"), "path", "other"))
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_SECONDS.labels(scope["method"], route).observe(time.perf_counter() - started)
