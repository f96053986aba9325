"""The job's sample prompts answered by the model as it trains: at each evaluation and at the end, in
the training child, with the weights already in memory (transformers' `generate`), reported as a
`samples` event. Greedy decoding (temperature 0) gives the same text for the same weights."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from services.common.prompts import Chat
from services.trainer.process import EventSink

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerControl, TrainerState, TrainingArguments


def prompt_inputs(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, chat: Chat) -> dict[str, Any]:
    """A chat as the model's input, on its device: rendered by the chat template with the assistant's
    turn opened, or, for a tokenizer without one, its messages as plain text."""
    if tokenizer.chat_template:
        ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    else:
        ids = tokenizer("\n".join(m["content"] for m in chat), return_tensors="pt")
    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in ids.items() if k in ("input_ids", "attention_mask")}


def decoding(tokenizer: PreTrainedTokenizerBase, max_new_tokens: int, temperature: float) -> dict[str, Any]:
    """`generate`'s arguments: greedy at temperature 0 (the same text for the same weights), else sampled."""
    sampled = temperature > 0
    return {"max_new_tokens": max_new_tokens, "do_sample": sampled, "temperature": temperature if sampled else None,
            "top_p": None, "top_k": None, "use_cache": True, "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id}


def answer(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, chats: list[Chat], max_new_tokens: int,
           temperature: float, seed: int) -> list[dict[str, Any]]:
    """One answer per chat from the model as it is now: its prompt's last user message, the answer's
    text and its token count."""
    import torch

    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for chat in chats:
                inputs = prompt_inputs(model, tokenizer, chat)
                torch.manual_seed(seed)
                generated = model.generate(**inputs, **decoding(tokenizer, max_new_tokens, temperature))
                new = generated[0][inputs["input_ids"].shape[1]:]
                prompt = next((m["content"] for m in reversed(chat) if m["role"] == "user"), chat[-1]["content"])
                out.append({"prompt": prompt, "completion": tokenizer.decode(new, skip_special_tokens=True),
                            "tokens": int(new.shape[0])})
    finally:
        if was_training:
            model.train()
    return out


class SamplingCallback(TrainerCallback):  # type: ignore[misc]  # transformers is read as untyped
    """Answers the sample prompts after each evaluation (and, through `final`, at the end)."""

    def __init__(self, sink: EventSink, tokenizer: PreTrainedTokenizerBase, chats: list[Chat], max_new_tokens: int,
                 temperature: float, seed: int) -> None:
        self.sink, self.tokenizer, self.chats = sink, tokenizer, chats
        self.max_new_tokens, self.temperature, self.seed = max_new_tokens, temperature, seed
        self.answered_at = -1

    def report(self, model: PreTrainedModel, step: int, final: bool = False) -> None:
        if not self.chats or (step == self.answered_at and not final):
            return
        began = time.monotonic()
        answers = answer(model, self.tokenizer, self.chats, self.max_new_tokens, self.temperature, self.seed)
        self.answered_at = step
        self.sink.emit(samples={"step": step, "answers": answers, "seconds": time.monotonic() - began,
                                "final": final})

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    model: PreTrainedModel | None = None, **kwargs: Any) -> None:
        if model is not None and state.is_world_process_zero:
            self.report(model, state.global_step)
