"""The gateway served by uvicorn: inside `ftlab serve`'s process (its signals stay the process's), or
alone:

    python -m services.openai_gateway --scheduler HOST:50051 [--host 0.0.0.0] [--port 8080]

Model aliases (`model` names a job's base model through them): FTLAB_OPENAI_MODELS, as
`name=model,name2=model2` or the path of a JSON object of them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Generator
from pathlib import Path

import uvicorn

from services.common import settings
from services.openai_gateway.app import Gateway, create_app


def aliases_from_env() -> dict[str, str]:
    text = os.environ.get("FTLAB_OPENAI_MODELS", "").strip()
    if not text:
        return {}
    if not text.startswith("{") and Path(text).is_file():
        text = Path(text).read_text()
    if text.startswith("{"):
        loaded = json.loads(text)
        return {str(k): str(v) for k, v in loaded.items()}
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    return {k.strip(): v.strip() for k, v in pairs}


class _Embedded(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the process's own handling of SIGTERM stops this server (see Served.stop)


class Served:
    """The gateway's HTTP server, running in this process's event loop."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None]) -> None:
        self.server, self.task = server, task

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.gather(self.task, return_exceptions=True)


async def start(target: str, host: str, port: int) -> Served:
    """Serve the gateway on host:port (0: a free port), calling the services at `target`."""
    gateway = Gateway(target, aliases_from_env(), settings.max_upload_bytes())
    config = uvicorn.Config(create_app(gateway), host=host, port=port, log_level="warning", access_log=False,
                            lifespan="on")
    server = _Embedded(config)
    task = asyncio.create_task(server.serve(), name="openai-gateway")
    while not server.started:
        if task.done():
            await task  # its error, e.g. the port is taken
            raise RuntimeError(f"the OpenAI gateway did not start on {host}:{port}")
        await asyncio.sleep(0.02)
    return Served(server, task)
