"""A generation process: one job's weights loaded once, answering chats until the trainer closes its
socket (services/trainer/generation.py starts it, forked from the zygote like a training run).

    python -m services.trainer.generation_child --spec SPEC.json --events-fd N

N is a socket: GenerationCommand frames in (an ask, or stop), GenerationOutput frames out (ready,
pieces of text as they are decoded, done, or an error), each a 4-byte length and its bytes. Loading
goes through the training child's own code (loading.py), so a model generates as it trained.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any

from ftlab.v1 import events_pb2
from services.trainer.process import FRAME, MAX_REPORT, die_with_parent

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


class Socket:
    """Frames over the inherited socket."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, output: events_pb2.GenerationOutput) -> None:
        data = output.SerializeToString()
        view = memoryview(FRAME.pack(len(data)) + data)
        while view:
            view = view[os.write(self.fd, view):]

    def _exactly(self, n: int) -> bytes | None:
        chunks, left = [], n
        while left:
            chunk = os.read(self.fd, left)
            if not chunk:
                return None
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def receive(self) -> events_pb2.GenerationCommand | None:
        """The next command, or None when the trainer has closed the socket."""
        header = self._exactly(FRAME.size)
        if header is None:
            return None
        (size,) = FRAME.unpack(header)
        if size > MAX_REPORT:
            return None
        body = self._exactly(size)
        return None if body is None else events_pb2.GenerationCommand.FromString(body)

    def waiting(self) -> bool:
        return bool(select.select([self.fd], [], [], 0)[0])


def load(spec: dict[str, Any]) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The job's weights: the base model with an adapter (a LoRA job's final adapter or checkpoint),
    or a full fine-tuning's own model folder; the tokenizer with the job's chat template."""
    from transformers import AutoConfig

    from services.common import settings
    from services.trainer import loading, recipe, tuning

    cfg = spec["config"]
    remote_code = settings.trust_remote_code()
    source = spec["model"] or cfg["base_model"]
    model_type = getattr(AutoConfig.from_pretrained(source, trust_remote_code=remote_code), "model_type", "")
    decided = tuning.decide(cfg, tuning.Machine.current(), model_type).config
    tokenizer = loading.tokenizer(spec["tokenizer"] or cfg["base_model"], decided, remote_code)
    model = loading.model(source, decided, recipe.precision_of(decided), remote_code, 0)
    if spec["adapter"]:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, spec["adapter"])
    model.eval()
    return model, tokenizer


def answer(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, ask: events_pb2.GenerationAsk,
           sock: Socket) -> events_pb2.GenerationDone:
    """Generate the answer to `ask`, sending its text as it is decoded; stop when told to."""
    import torch
    from transformers import StoppingCriteria, TextStreamer

    began = time.monotonic()
    state = {"tokens": 0, "first": 0.0, "stopped": False}

    class Pieces(TextStreamer):  # type: ignore[misc]  # transformers is read as untyped
        def put(self, value: Any) -> None:
            if not self.next_tokens_are_prompt:
                state["tokens"] += int(value.numel())
                if not state["first"]:
                    state["first"] = time.monotonic() - began
            super().put(value)

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                sock.send(events_pb2.GenerationOutput(text=text))

    class Stop(StoppingCriteria):  # type: ignore[misc]
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
            while sock.waiting():  # the trainer asks to stop (the caller went away)
                command = sock.receive()
                if command is None or command.HasField("stop"):
                    state["stopped"] = True
            return bool(state["stopped"])

    from services.trainer.sampling import decoding, prompt_inputs

    inputs = prompt_inputs(model, tokenizer, [{"role": m.role, "content": m.content} for m in ask.messages])
    torch.manual_seed(ask.seed)
    with torch.no_grad():
        model.generate(**inputs, **decoding(tokenizer, ask.max_new_tokens, ask.temperature),
                       streamer=Pieces(tokenizer, skip_prompt=True, skip_special_tokens=True),
                       stopping_criteria=[Stop()])
    tokens = int(state["tokens"])
    reason = "stopped" if state["stopped"] else "length" if tokens >= ask.max_new_tokens else "eos"
    return events_pb2.GenerationDone(tokens=tokens, first_token_seconds=float(state["first"]),
                                     seconds=time.monotonic() - began, finish_reason=reason)


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--events-fd", type=int, required=True)
    args = parser.parse_args(argv)
    sock = Socket(args.events_fd)
    began = time.monotonic()
    try:
        with open(args.spec) as f:
            model, tokenizer = load(json.load(f))
    except BaseException as exc:
        print(traceback.format_exc(), file=sys.stderr, flush=True)
        kind = type(exc)
        sock.send(events_pb2.GenerationOutput(error=events_pb2.RunError(
            type=f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins."), message=str(exc)[:4000],
            phase=events_pb2.PHASE_MODEL_LOAD)))
        return 1
    sock.send(events_pb2.GenerationOutput(ready_seconds=time.monotonic() - began))
    print(f"ftlab: generation ready in {time.monotonic() - began:.1f}s", flush=True)
    while (command := sock.receive()) is not None:
        if not command.HasField("ask"):
            continue  # a stop that came after its answer was done
        try:
            done = answer(model, tokenizer, command.ask, sock)
        except Exception as exc:  # out of memory, say: the trainer ends this process and says why
            print(traceback.format_exc(), file=sys.stderr, flush=True)
            sock.send(events_pb2.GenerationOutput(error=events_pb2.RunError(
                type=type(exc).__name__, message=str(exc)[:4000], phase=events_pb2.PHASE_EVALUATION)))
            return 1
        sock.send(events_pb2.GenerationOutput(done=done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
