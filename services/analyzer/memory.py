"""Peak GPU memory of a training run, estimated from the model's shape and the job's config.

Model states from first principles: bytes per parameter for the weights as held (fp32 master weights
and their bf16 autocast copies for full fine-tuning, bf16 for LoRA, 4-bit nf4 plus fp32 embeddings and
norms for QLoRA, as `prepare_model_for_kbit_training` leaves them), fp32 gradients and two fp32 AdamW
moments per trainable parameter. Activations: tokens per micro-batch x layers x hidden size x a
per-mode factor plus LoRA dropout's copies of each adapted layer's input, calibrated on real H100
runs of Qwen2.5 0.5B/1.5B shapes with TRL 1.16 (its fused LM head keeps the logits out of the peak). `bench/gpu_memory.py` measures, `bench/memory_estimate.py`
compares; the README gives the error.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftlab.v1 import analyzer_pb2, config_pb2

log = logging.getLogger(__name__)
C = config_pb2
GIB = 2**30

# Activation bytes per token, per layer, per hidden unit (bf16 autocast), before LoRA's dropout copies.
ACTIVATION_FACTOR = {"full": 67.0, "lora": 48.9, "qlora": 85.5}
# LoRA dropout keeps its input (bf16, 2 bytes) and its mask (1 byte) per element of each adapted layer's input.
DROPOUT_BYTES = 3.0
# The same with gradient checkpointing (layer inputs kept, one layer recomputed at a time).
CHECKPOINTED_FACTOR = {"full": 5.3, "lora": 7.8, "qlora": 10.6}
FIXED_BYTES = int(0.3 * GIB)  # CUDA workspaces, the fused LM head's chunk
ALLOCATOR_SLACK = 1.06  # peak reserved over peak allocated, as measured
DPO_TOKEN_FACTOR = 1.75  # chosen and rejected in one batch (2x), their shared prompt padded less (measured)
CUDA_CONTEXT_BYTES = int(0.5 * GIB)  # outside PyTorch's allocator, but on the same GPU
_LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Shape:
    """The dimensions of a decoder-only transformer that memory depends on."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool
    max_positions: int | None = None
    learned_positions: bool = False  # a position table (GPT-2's wpe) rather than rotary: no longer input works

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def linear_dims(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer of one decoder layer, by the Llama/Qwen2 names."""
        h, i, kv = self.hidden, self.intermediate, self.kv_heads * self.head_dim
        return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.linear_dims().values())

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)

    @property
    def norm_params(self) -> int:
        return (2 * self.layers + 1) * self.hidden

    @property
    def params(self) -> int:
        return self.linear_params + self.embedding_params + self.norm_params


def shape_from_config(cfg: dict[str, Any]) -> Shape:
    """Read a Hugging Face config.json (Llama/Qwen2/Mistral or GPT-2 key names)."""
    hidden = int(cfg.get("hidden_size") or cfg["n_embd"])
    heads = int(cfg.get("num_attention_heads") or cfg["n_head"])
    return Shape(
        hidden=hidden,
        intermediate=int(cfg.get("intermediate_size") or cfg.get("n_inner") or 4 * hidden),
        layers=int(cfg.get("num_hidden_layers") or cfg["n_layer"]),
        heads=heads,
        kv_heads=int(cfg.get("num_key_value_heads") or heads),
        vocab=int(cfg["vocab_size"]),
        tied=bool(cfg.get("tie_word_embeddings", True)),
        max_positions=cfg.get("max_position_embeddings") or cfg.get("n_positions"),
        learned_positions="n_positions" in cfg or cfg.get("model_type") == "opt",
    )


MAX_FIGURE = (1 << 63) - 1


def load_shape(base_model: str) -> Shape | None:
    """The model's shape from its config.json: a local folder, or the Hugging Face cache (no download)."""
    path = Path(base_model).expanduser()
    try:
        if path.is_dir():
            return shape_from_config(json.loads((path / "config.json").read_text()))
        from huggingface_hub import hf_hub_download

        cached = hf_hub_download(base_model, "config.json", local_files_only=True)
        return shape_from_config(json.loads(Path(cached).read_text()))
    except Exception as exc:  # unknown model, offline hub, odd config: no estimate, said as much
        log.info("no shape for %s: %s", base_model, exc)
        return None


def _mode(c: config_pb2.TrainingConfig) -> str:
    return {C.ADAPTER_FULL: "full", C.ADAPTER_QLORA: "qlora"}.get(c.adapter, "lora")


def trainable_params(shape: Shape, c: config_pb2.TrainingConfig) -> int:
    if c.adapter == C.ADAPTER_FULL:
        return shape.params
    dims = shape.linear_dims()
    rank = c.lora.rank or 16
    return shape.layers * sum(rank * (dims[t][0] + dims[t][1]) for t in _targets(shape, c))


def _targets(shape: Shape, c: config_pb2.TrainingConfig) -> list[str]:
    """The adapted linear layers: those named, or all of them for "all-linear" (or names we do not know)."""
    return [t for t in c.lora.target_modules if t in shape.linear_dims()] or list(_LINEAR_NAMES)


def estimate(shape: Shape, c: config_pb2.TrainingConfig, gpu_memory_bytes: int = 0,
             gpu_name: str = "") -> analyzer_pb2.MemoryEstimate:
    """Estimated peak GPU memory (what PyTorch reserves) of training `c` on a model of `shape`."""
    mode = _mode(c)
    fp32 = c.precision == C.PRECISION_FP32
    trainable = trainable_params(shape, c)
    checkpointing = bool(c.gradient_checkpointing)
    if mode == "full":
        weights = 4 * shape.params
        if not fp32 and not checkpointing:
            weights += 2 * shape.linear_params  # autocast's cached bf16 copies, kept through the forward pass
    elif mode == "lora":
        weights = (4 if fp32 else 2) * shape.params + 4 * trainable
    else:
        weights = int(0.5 * 1.03 * shape.linear_params) + 4 * (shape.embedding_params + shape.norm_params) + 4 * trainable
    gradients = 4 * trainable
    optimizer = 8 * trainable
    tokens = (c.per_device_train_batch_size or 1) * (c.max_seq_length or 1024)
    if c.method == C.METHOD_DPO:
        tokens = int(tokens * DPO_TOKEN_FACTOR)
    factor = (CHECKPOINTED_FACTOR if checkpointing else ACTIVATION_FACTOR)[mode]
    if mode != "full" and not checkpointing and c.lora.dropout > 0:
        factor += DROPOUT_BYTES * sum(shape.linear_dims()[t][0] for t in _targets(shape, c)) / shape.hidden
    factor *= 2 if fp32 else 1
    activations = int(tokens * shape.layers * shape.hidden * factor)
    allocated = weights + gradients + optimizer + activations + FIXED_BYTES
    total = int(allocated * ALLOCATOR_SLACK)
    figures = dict(
        weights_bytes=weights, gradients_bytes=gradients, optimizer_bytes=optimizer, activations_bytes=activations,
        other_bytes=total - (weights + gradients + optimizer + activations), total_bytes=total,
        parameters=shape.params, trainable_parameters=trainable, gpu_memory_bytes=gpu_memory_bytes)
    # absurd shapes or batches give absurd figures, but never more than an int64 holds
    return analyzer_pb2.MemoryEstimate(gpu_name=gpu_name, **{k: max(0, min(int(v), MAX_FIGURE)) for k, v in figures.items()})
