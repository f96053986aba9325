"""Speed settings decided for the machine a run is on.

The job's config says AUTO where the user left a choice to us; `decide` makes each one concrete for
this machine and says why, so the job's effective config (Job.effective_config, Job.tuning) shows
exactly how the run trained, and every choice can be overridden field by field. Pure functions of
the config and a `Machine`, so they are tested without the hardware they describe.

The micro-batch search (`largest_micro_batch`) is the one decision that needs the model: it runs in
the child once the model is built, and `apply_micro_batch` hands its result to the Trainer.
"""

from __future__ import annotations

import copy
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import Trainer

# Model types whose layers liger-kernel patches (its `_apply_liger_kernel_to_instance` table).
LIGER_MODEL_TYPES = frozenset({"llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "gemma", "gemma2",
                               "gemma3", "phi3", "granite", "olmo2", "glm4"})


@dataclass(frozen=True)
class Machine:
    """What the run's process sees."""

    device: str  # "cuda" or "cpu"
    cpus: int
    bf16: bool = False  # the GPU computes in bf16
    gpu_name: str = ""
    gpu_memory_bytes: int = 0
    world_size: int = 1  # processes of this run (torchrun)
    has_liger: bool = False
    has_flash_attn: bool = False

    @classmethod
    def current(cls) -> "Machine":
        import torch

        cuda = torch.cuda.is_available()
        world = int(os.environ.get("WORLD_SIZE", "1"))
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return cls(
            device="cuda" if cuda else "cpu", cpus=cpus, world_size=world,
            bf16=bool(cuda and torch.cuda.is_bf16_supported()),
            gpu_name=torch.cuda.get_device_name(0) if cuda else "",
            gpu_memory_bytes=torch.cuda.get_device_properties(0).total_memory if cuda else 0,
            has_liger=importlib.util.find_spec("liger_kernel") is not None,
            has_flash_attn=importlib.util.find_spec("flash_attn") is not None,
        )


@dataclass
class Choice:
    field: str
    value: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "value": self.value, "reason": self.reason}


@dataclass
class Decisions:
    config: dict[str, Any]  # the effective config, in the proto's JSON shape
    choices: list[Choice] = field(default_factory=list)

    def choose(self, name: str, value: Any, reason: str) -> None:
        self.config[name] = value
        shown = value.removeprefix("SWITCH_").removeprefix("OPTIMIZER_").removeprefix("PRECISION_").lower() \
            if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
        self.choices.append(Choice(name, shown, reason))


def _auto(value: Any) -> bool:
    return value in (None, "", "SWITCH_AUTO", "SWITCH_UNSPECIFIED")


def decide(cfg: dict[str, Any], machine: Machine, model_type: str = "") -> Decisions:
    """The effective config: every AUTO of `cfg` decided for `machine`, each decision with its reason."""
    d = Decisions(copy.deepcopy(cfg))
    cuda = machine.device == "cuda"
    sft = cfg.get("method", "METHOD_SFT") != "METHOD_DPO"

    precision = cfg.get("precision", "PRECISION_AUTO")
    if precision in ("PRECISION_AUTO", "PRECISION_UNSPECIFIED", ""):
        if cuda and machine.bf16:
            d.choose("precision", "PRECISION_BF16", f"{machine.gpu_name} computes in bf16: mixed precision, "
                     "no loss scaling")
        elif cuda:
            d.choose("precision", "PRECISION_FP16", f"{machine.gpu_name} has no bf16: fp16 with loss scaling")
        else:
            d.choose("precision", "PRECISION_FP32", "CPU: full precision (mixed precision is for GPUs here)")

    if cfg.get("optimizer", "OPTIMIZER_AUTO") in ("OPTIMIZER_AUTO", "OPTIMIZER_UNSPECIFIED", ""):
        d.choose("optimizer", "OPTIMIZER_ADAMW_TORCH_FUSED",
                 "fused AdamW: one kernel updates every parameter, the same update as AdamW")

    attention = cfg.get("attn_implementation") or "auto"
    if attention == "auto":
        if cuda and machine.has_flash_attn:
            d.choose("attn_implementation", "flash_attention_2",
                     "flash-attn is installed: variable-length attention, no work across example boundaries")
        else:
            why = "flash-attn is not installed" if cuda else "CPU"
            d.choose("attn_implementation", "sdpa", f"{why}: PyTorch SDPA (padding-free batches get a "
                     "block-diagonal mask from their position ids, so examples never attend to each other)")

    if not sft and cfg.get("padding_free"):
        d.choose("padding_free", False, "DPO pads its batches (TRL's DPO has no padding-free mode)")

    liger = cfg.get("liger_kernel", "SWITCH_AUTO")
    if _auto(liger):
        if not cuda:
            d.choose("liger_kernel", "SWITCH_OFF", "CPU: Liger's kernels are Triton, for GPUs")
        elif not machine.has_liger:
            d.choose("liger_kernel", "SWITCH_OFF", "liger-kernel is not installed (pip install liger-kernel)")
        elif model_type not in LIGER_MODEL_TYPES:
            d.choose("liger_kernel", "SWITCH_OFF", f"liger-kernel has no kernels for model type {model_type!r}")
        else:
            d.choose("liger_kernel", "SWITCH_ON", f"fused RMSNorm, RoPE and SwiGLU for {model_type}: less memory "
                     "and time in every layer")

    if _auto(cfg.get("torch_compile", "SWITCH_AUTO")):
        if not cuda:
            d.choose("torch_compile", "SWITCH_OFF", "CPU: not measured to pay for its compile time here; "
                     "set torch_compile ON to try it")
        elif d.config.get("padding_free") and sft:
            d.choose("torch_compile", "SWITCH_OFF", "padding-free batches change length every step, and each new "
                     "length would recompile")
        else:
            d.choose("torch_compile", "SWITCH_OFF", "not yet measured to pay for its warm-up here; "
                     "set torch_compile ON to try it")

    workers = int(cfg.get("dataloader_num_workers", -1))
    if workers < 0:
        if cuda:
            per_process = max(1, machine.cpus // max(1, machine.world_size))
            n = max(0, min(4, per_process - 1))
            d.choose("dataloader_num_workers", n, f"{machine.cpus} CPUs for {machine.world_size} training "
                     f"process(es): {n} loader workers each, one core left to drive the GPU")
        else:
            d.choose("dataloader_num_workers", 0, "CPU training uses every core for compute; the data is tokenized "
                     "once up front, so loading in the training process costs little")

    if _auto(cfg.get("auto_micro_batch", "SWITCH_AUTO")):
        if cuda:
            d.choose("auto_micro_batch", "SWITCH_ON", "search for the largest micro-batch that fits, keeping the "
                     "effective batch")
        else:
            d.choose("auto_micro_batch", "SWITCH_OFF", "CPU: larger micro-batches do not run faster, and there is no "
                     "GPU memory to fill")
    return d


def micro_batch_candidates(micro: int, accumulation: int) -> list[int]:
    """Micro-batches that keep `micro * accumulation` exactly, largest first, none below `micro`."""
    effective = micro * accumulation
    return [b for b in range(effective, micro - 1, -1) if effective % b == 0]


def largest_micro_batch(micro: int, accumulation: int, fits: Callable[[int], bool]) -> tuple[int, int, list[int]]:
    """The largest candidate micro-batch for which `fits(b)` holds, and its accumulation.

    Candidates are tried largest first; the requested one is the fallback (it is what the user asked
    for, and a real out-of-memory there is the analyzer's to explain). Returns (micro, accumulation,
    tried)."""
    effective = micro * accumulation
    tried = []
    for b in micro_batch_candidates(micro, accumulation):
        if b == micro:
            break
        tried.append(b)
        if fits(b):
            return b, effective // b, tried
    return micro, accumulation, tried


def worst_case_tokens(lengths: list[int], b: int, padding_free: bool) -> int:
    """Tokens in the heaviest micro-batch of `b` examples: the `b` longest ones, flattened
    (padding-free) or padded to the longest."""
    top = sorted(lengths, reverse=True)[:b]
    if not top:
        return 0
    return sum(top) if padding_free else top[0] * len(top)


VARLEN_ATTENTION = frozenset({"flash_attention_2", "flash_attention_3", "flex_attention"})


def token_cap(cfg: dict[str, Any]) -> int | None:
    """Most tokens a padding-free micro-batch may hold, or None for no limit. Without a variable-length
    attention kernel, SDPA attends over the whole flattened micro-batch under a block-diagonal mask,
    so its cost grows with the square of the micro-batch's tokens: up to 4 x max_seq_length it costs
    about what 16 padded sequences of max_seq_length would."""
    if not cfg.get("padding_free") or cfg.get("attn_implementation") in VARLEN_ATTENTION:
        return None
    return 4 * int(cfg["max_seq_length"])


def apply_micro_batch(trainer: Trainer, micro: int, accumulation: int) -> None:
    """Change a built Trainer's micro-batch and accumulation before `train()`. Transformers runs the
    accumulation loop itself from `args` (Accelerate's is fixed at 1) and sizes its dataloader from
    `_train_batch_size`, as its own `auto_find_batch_size` does."""
    trainer.args.per_device_train_batch_size = micro
    trainer.args.gradient_accumulation_steps = accumulation
    trainer._train_batch_size = trainer.args.train_batch_size
