"""The micro-batch search, in the child once the Trainer is built: the largest micro-batch whose
forward and backward of the data's longest examples fit the GPU, keeping the effective batch through
accumulation (the choice itself is tuning.largest_micro_batch's, tested without a GPU)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from services.trainer.process import across_ranks

if TYPE_CHECKING:
    from transformers import Trainer

    from services.trainer.tuning import Decisions, Machine


def search(trainer: Trainer, cfg: dict[str, Any], decisions: Decisions, machine: Machine) -> None:
    """The largest micro-batch that fits this GPU with the heaviest examples of the data, keeping the
    effective batch; applied to the built trainer."""
    from services.trainer import tuning

    micro, accumulation = int(cfg["per_device_train_batch_size"]), int(cfg["gradient_accumulation_steps"])
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    padding_free = bool(cfg.get("padding_free"))
    probe = _memory_probe(trainer, lengths, padding_free, machine.gpu_memory_bytes)
    cap = tuning.token_cap(cfg)

    def fits(b: int) -> bool:
        return (cap is None or tuning.worst_case_tokens(lengths, b, padding_free) <= cap) and probe(b)

    b, _, tried = tuning.largest_micro_batch(micro, accumulation, fits)
    b = across_ranks(b, "min", next(trainer.model.parameters()).device)  # every rank must accumulate alike,
    # or DDP waits forever
    g = micro * accumulation // b
    if b != micro:
        tuning.apply_micro_batch(trainer, b, g)
        why = (f"largest micro-batch that fits {machine.gpu_memory_bytes / 2**30:.0f} GiB with the {b} longest examples "
               f"(tried {', '.join(map(str, tried))}); effective batch {micro * accumulation} kept")
    else:
        why = f"no larger micro-batch fits (tried {', '.join(map(str, tried)) or 'none'}); as requested"
    if cap is not None:
        why += f"; at most {cap} tokens per padding-free micro-batch with {cfg['attn_implementation']} attention"
    decisions.choose("per_device_train_batch_size", b, why)
    decisions.choose("gradient_accumulation_steps", g, f"{micro * accumulation} / {b}")


def _memory_probe(trainer: Trainer, lengths: list[int], padding_free: bool, total_bytes: int,
                  headroom: float = 0.9) -> Callable[[int], bool]:
    """fits(b): one forward and backward of the `b` longest examples, with the optimizer's state held
    aside, peaks under `headroom` of the GPU."""
    import torch

    from services.trainer import tuning

    model = trainer.model
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    optimizer_state = 2 * trainable  # AdamW's two moments, in the parameters' dtype
    device = next(p.device for p in model.parameters())
    dtype = torch.bfloat16 if trainer.args.bf16 else torch.float16 if trainer.args.fp16 else None

    def fits(b: int) -> bool:
        tokens = tuning.worst_case_tokens(lengths, b, padding_free)
        top = sorted(lengths, reverse=True)[:b]
        held = None
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        try:
            held = torch.empty(optimizer_state, dtype=torch.uint8, device=device)
            if padding_free:
                ids = torch.randint(0, 1000, (1, tokens), device=device)
                pos = torch.cat([torch.arange(n, device=device) for n in top]).unsqueeze(0)
                batch = {"input_ids": ids, "position_ids": pos, "labels": ids}
            else:
                ids = torch.randint(0, 1000, (len(top), top[0]), device=device)
                batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
            with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
                loss = model(**batch).loss
            loss.backward()
            peak: int = torch.cuda.max_memory_allocated()
            return peak <= headroom * total_bytes
        except torch.OutOfMemoryError:
            return False
        finally:
            del held
            model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()

    return fits
