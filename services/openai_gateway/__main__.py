"""python -m services.openai_gateway: the gateway alone, a client of the scheduler's address."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from pathlib import Path

from services.common import metrics
from services.common import server as bootstrap
from services.openai_gateway.server import start


async def _serve(args: argparse.Namespace) -> None:
    served = await start(args.scheduler, args.host, args.port)
    log = logging.getLogger("ftlab")
    log.info("OpenAI-compatible gateway on %s:%d for %s", args.host, served.port, args.scheduler)
    metrics_port = metrics.serve_metrics(args.metrics_port, args.host) if args.metrics_port >= 0 else -1
    if metrics_port >= 0:
        log.info("metrics on %s:%d/metrics", args.host, metrics_port)
    if args.ready_file:  # as the other services write theirs: the ports it took, for whoever started it
        tmp = Path(args.ready_file + ".tmp")
        tmp.write_text(json.dumps({"port": served.port, "metrics_port": metrics_port, "pid": os.getpid()}))
        tmp.replace(args.ready_file)
    await bootstrap.wait_for_signal()
    await served.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.openai_gateway", description=__doc__)
    parser.add_argument("--scheduler", default=os.environ.get("FTLAB_SCHEDULER_ADDRESS", "127.0.0.1:50051"),
                        help="the scheduler's gRPC address (FTLAB_SCHEDULER_ADDRESS)")
    parser.add_argument("--host", default=os.environ.get("FTLAB_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=8080, help="HTTP (0: a free port)")
    parser.add_argument("--metrics-port", type=int, default=9468, help="Prometheus /metrics (0: a free port; -1: none)")
    parser.add_argument("--ready-file", default="", help="write the ports taken here, as JSON, once serving")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("FTLAB_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
