"""`POST /v1/chat/completions` with `model` a fine-tuned model (`ft:{model}:{suffix}:{job id}`, or a
checkpoint's `...:ckpt-step-{step}`), answered by GenerateText on a trainer, whole or streamed as
`chat.completion.chunk` events. It serves a person trying a model; production traffic is better
served by the merged export behind a serving engine such as vLLM."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ftlab.v1 import events_pb2, job_pb2, job_service_pb2
from services.openai_gateway import errors, shapes
from services.openai_gateway.app import Gw, Who
from services.openai_gateway.shapes import Invalid

router = APIRouter(prefix="/v1/chat")


def _request(body: Any) -> tuple[job_service_pb2.GenerateTextRequest, str, bool]:
    """(the GenerateText request, the model as named, whether to stream)."""
    if not isinstance(body, dict):
        raise Invalid("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str):
        raise Invalid("you must provide a model", "model")
    job, checkpoint = shapes.parse_model(model)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages must be a non-empty list", "messages")
    request = job_service_pb2.GenerateTextRequest(name=job)
    for i, m in enumerate(messages):
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):  # content parts: their text
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str) or not isinstance(m.get("role"), str):
            raise Invalid(f"messages[{i}] needs a role and text content", f"messages[{i}]")
        request.messages.append(events_pb2.ChatMessage(role=m["role"], content=content))
    if checkpoint:
        request.checkpoint, request.checkpoint_name = job_pb2.CHECKPOINT_SELECTOR_NAMED, checkpoint
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        request.max_new_tokens = int(limit)
    if body.get("temperature") is not None:
        request.temperature = float(body["temperature"])
    if body.get("seed") is not None:
        request.seed = int(body["seed"])
    if body.get("n", 1) != 1:
        raise Invalid("only n=1 is supported", "n")
    return request, model, bool(body.get("stream"))


def _finish(done: events_pb2.GenerationDone | None) -> str:
    return "length" if done is not None and done.finish_reason == "length" else "stop"


@router.post("/completions", response_model=None)
async def completions(request: Request, who: Who, gateway: Gw) -> dict[str, Any] | StreamingResponse:
    try:
        body = await request.json()
    except ValueError:
        raise Invalid("the request body is not JSON") from None
    ask, model, stream = _request(body)
    ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    call = gateway.jobs.GenerateText(ask, metadata=who)
    first = await call.read()  # a refusal comes as an error status, before any text

    async def pieces() -> AsyncIterator[job_service_pb2.GenerateTextResponse]:
        piece = first
        while piece is not grpc.aio.EOF:
            yield piece
            piece = await call.read()

    if not stream:
        text, done = [], None
        async for piece in pieces():
            text.append(piece.text)
            if piece.HasField("done"):
                done = piece.done
        return {"id": ident, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(text)},
                             "finish_reason": _finish(done), "logprobs": None}],
                "usage": {"prompt_tokens": 0, "completion_tokens": done.tokens if done else 0,
                          "total_tokens": done.tokens if done else 0}}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        return f"data: {json.dumps(data)}\n\n".encode()

    async def events() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": ""})
        done = None
        try:
            async for piece in pieces():
                if piece.text:
                    yield chunk({"content": piece.text})
                if piece.HasField("done"):
                    done = piece.done
        except grpc.aio.AioRpcError as exc:  # mid-stream: the error as an event, as OpenAI's streams do
            yield f"data: {json.dumps(errors.body(exc.details() or exc.code().name, 500))}\n\n".encode()
            return
        yield chunk({}, _finish(done))
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
