"""Config changes that should fix a failure, computed from the job's actual config.

Each suggestion names a TrainingConfig field (dotted), its current value, the suggested value,
why, and what to expect. Nothing here is a fixed string that ignores the config: a micro-batch of
1 is not halved, gradient checkpointing already on is not suggested again, and so on.
"""

from __future__ import annotations

import re
from typing import TypedDict

from google.protobuf.message import Message

from ftlab.v1 import analyzer_pb2, config_pb2
from services.common import chat_templates, columns

C = config_pb2


class Findings(TypedDict, total=False):
    """What the log (or the pre-flight) told beyond the category."""

    cause: str  # "positions", "dropped", "columns_absent", "method", "tracker"...
    max_positions: int | None  # the model's
    columns: list[str] | None  # the dataset's, where the data reader named them
    message: str  # the error's own
    resuming: bool  # the run was reading a checkpoint back (analyze._resuming)


def heads_misfit(c: config_pb2.TrainingConfig, misfit: str) -> analyzer_pb2.ConfigPatch:
    """Advice for a model whose config.json's attention head counts do not fit (`misfit` says how)."""
    return patch("base_model", c.base_model or "unset", "a model whose config.json is the one its weights were "
                 "saved with", f"the model's own config.json: {misfit}; it was edited, or belongs to another model",
                 "")


def _enum(config: Message, field: str) -> str:
    value = getattr(config, field)
    descriptor = config.DESCRIPTOR.fields_by_name[field].enum_type
    assert descriptor is not None  # `field` is an enum field
    name: str = descriptor.values_by_number[value].name
    return name


def patch(field: str, current: object, suggested: object, reason: str, effect: str = "") -> analyzer_pb2.ConfigPatch:
    return analyzer_pb2.ConfigPatch(field=field, current=str(current), suggested=str(suggested), reason=reason,
                                    expected_effect=effect)


def eval_split(c: config_pb2.TrainingConfig) -> analyzer_pb2.ConfigPatch:
    """A smaller evaluation split, where the job's leaves no rows (or too few) on one side."""
    smaller = c.dataset.eval_split > 0.1
    return patch("dataset.eval_split", f"{c.dataset.eval_split:g}", "0.1" if smaller else "0",
                 "the evaluation split leaves no rows, or too few, on one side of the split",
                 "training keeps 90% of the rows" if smaller else "no split")


def weight_decay(c: config_pb2.TrainingConfig, lr: float, at_least: float) -> analyzer_pb2.ConfigPatch | None:
    """weight_decay 0.01, where learning_rate x weight_decay is `at_least` or more: AdamW multiplies every
    weight by (1 - their product) at each step."""
    decay = lr * c.weight_decay
    if decay < at_least:
        return None
    return patch("weight_decay", f"{c.weight_decay:g}", "0.01", f"learning_rate x weight_decay is {decay:g}: each "
                 f"step multiplies every weight by {1 - decay:.3g}", "weights kept, decayed gently")


def _is_set(config: Message, field: str) -> bool:
    return config.HasField(field) if config.DESCRIPTOR.fields_by_name[field].has_presence else bool(getattr(config, field))


def suggest(category: str, phase: str, c: config_pb2.TrainingConfig, on_gpu: bool,
            facts: Findings | None = None) -> list[analyzer_pb2.ConfigPatch]:
    """`facts` are what the log told beyond the category: `cause` ("positions": past the model's
    position table; "dropped": every example cut away), `max_positions` (the model's) and `columns`
    (the dataset's, where the data reader named them)."""
    facts = facts or {}
    out: list[analyzer_pb2.ConfigPatch] = []
    if category == "CUDA_OOM" and phase == "EVALUATION":
        eval_batch = c.per_device_eval_batch_size or 8
        if eval_batch > 1:
            out.append(patch("per_device_eval_batch_size", eval_batch, max(1, eval_batch // 4),
                              "evaluation ran out of GPU memory; its batch is independent of training's",
                              "about a quarter of evaluation's activation memory; training is unchanged"))
        if not c.eval_accumulation_steps:
            out.append(patch("eval_accumulation_steps", c.eval_accumulation_steps or "unset", 4,
                              "move evaluation outputs off the GPU every few batches instead of holding them all",
                              "evaluation memory no longer grows with the evaluation set"))
    elif category in ("CUDA_OOM", "HOST_OOM"):
        batch = c.per_device_train_batch_size or 1
        accumulation = c.gradient_accumulation_steps or 1
        if category == "CUDA_OOM" and c.auto_micro_batch in (C.SWITCH_AUTO, C.SWITCH_ON):
            out.append(patch("auto_micro_batch", _enum(c, "auto_micro_batch"), "SWITCH_OFF",
                              "the micro-batch search may have chosen a larger micro-batch than requested, sized on "
                              "the longest examples; off, the run uses per_device_train_batch_size as given",
                              "the micro-batch asked for, with its activation memory"))
        if batch > 1:
            out.append(patch("per_device_train_batch_size", batch, batch // 2,
                              "halve the micro-batch: activation memory scales with it",
                              "about half the activation memory"))
            out.append(patch("gradient_accumulation_steps", accumulation, accumulation * 2,
                              "double accumulation so the effective batch stays "
                              f"{batch * accumulation}", "same effective batch and results, somewhat slower"))
        if not c.gradient_checkpointing:
            out.append(patch("gradient_checkpointing", "false", "true",
                              "recompute activations in the backward pass instead of storing them",
                              "much less activation memory for about a third more compute"))
        if category == "CUDA_OOM" and c.adapter == C.ADAPTER_LORA:
            out.append(patch("adapter", "ADAPTER_LORA", "ADAPTER_QLORA", "quantize the frozen base model to 4 bits",
                              "about a quarter of the weights' memory"))
        elif category == "CUDA_OOM" and c.adapter == C.ADAPTER_FULL:
            out.append(patch("adapter", "ADAPTER_FULL", "ADAPTER_LORA",
                              "train a LoRA adapter: no gradients or optimizer state for the base weights",
                              "the optimizer state shrinks from 2x the model to almost nothing"))
        if batch == 1 and c.max_seq_length > 256:
            out.append(patch("max_seq_length", c.max_seq_length, c.max_seq_length // 2,
                              "the micro-batch is already 1: shorter sequences are the next lever",
                              "about half the activation memory; longer examples are truncated"))
        if category == "HOST_OOM" and c.dataloader_num_workers != 0:
            out.append(patch("dataloader_num_workers", c.dataloader_num_workers, 0,
                              "each data-loading worker holds its own copy of the dataset", "less host memory"))
    elif category == "NAN_OR_DIVERGENCE":
        lr = c.learning_rate or 2e-4
        decay = weight_decay(c, lr, at_least=0.05)
        if decay is not None:
            out.append(decay)
        out.append(patch("learning_rate", f"{lr:g}", f"{lr / 10:g}", "the loss diverged: the step size is too large",
                          "a stable loss curve, learning more slowly"))
        if not c.max_grad_norm:
            out.append(patch("max_grad_norm", "0", "1.0", "clip gradients so one bad batch cannot blow up the weights",
                              "bounded updates"))
        if c.precision == C.PRECISION_FP16:
            out.append(patch("precision", "PRECISION_FP16", "PRECISION_BF16",
                              "fp16 overflows where bf16's range does not", "no overflow to inf/NaN"))
        if c.warmup_ratio < 0.03:
            out.append(patch("warmup_ratio", f"{c.warmup_ratio:g}", "0.05", "warm the learning rate up", ""))
    elif category == "PRECISION_UNSUPPORTED":
        current = _enum(c, "precision")
        out.append(patch("precision", current, "PRECISION_BF16" if on_gpu else "PRECISION_FP32",
                          "this precision cannot train here (e.g. fp16 weights with an fp16 gradient scaler)",
                          "training runs; bf16 needs an Ampere or newer GPU"))
    elif category == "QUANTIZATION_UNSUPPORTED" and facts.get("cause") == "package" and c.adapter != C.ADAPTER_QLORA:
        found = re.search(r"pip install ([\w.\[\]-]+)|requires (?:the )?`?([\w.-]+)", facts.get("message") or "")
        package = next((g for g in (found.groups() if found else ()) if g), "its package")
        out.append(patch("base_model", c.base_model or "unset", "an unquantized copy of this model",
                         f"the model is quantized by a method that needs {package}, which the trainer lacks: install "
                         f"it where the trainer runs, or train on the model before quantization",
                         "the model loads; a LoRA adapter trains on it"))
    elif category == "QUANTIZATION_UNSUPPORTED":
        if c.adapter == C.ADAPTER_QLORA:
            out.append(patch("adapter", "ADAPTER_QLORA", "ADAPTER_LORA",
                              "4-bit quantization is not available here (bitsandbytes needs a supported GPU)",
                              "more memory for the base weights"))
        else:
            out.append(patch("adapter", _enum(c, "adapter"), "ADAPTER_QLORA",
                              "a quantized model trains only through an adapter", "trains a LoRA adapter on top"))
    elif category == "LORA_TARGET_MODULES":
        out.append(patch("lora.target_modules", ",".join(c.lora.target_modules) or "unset", "all-linear",
                          "the named modules do not exist in this model; all-linear adapts every linear layer",
                          "works for any architecture"))
    elif category == "CHAT_TEMPLATE_MISSING":
        out.append(patch("chat_template", c.chat_template or "unset", "chatml",
                          "the tokenizer has no chat template and the data is conversational; chatml names the "
                          "built-in ChatML template", "conversations are rendered for training"))
    elif category == "CHAT_TEMPLATE_INCOMPATIBLE":
        if chat_templates.resolve(c.chat_template) != chat_templates.CHATML:
            why = ("the job's chat template fails on these conversations" if c.chat_template else
                   "the tokenizer's chat template fails on these conversations")
            if c.assistant_only_loss:
                why += " or lacks the {% generation %} markers assistant-only loss needs"
            out.append(patch("chat_template", "(the job's)" if c.chat_template else "unset", "chatml",
                              why + "; chatml names the built-in ChatML template, which renders every role and "
                              "marks the assistant's turns", "conversations render; assistant-only loss works"))
        elif c.assistant_only_loss:
            out.append(patch("assistant_only_loss", "true", "false",
                              "the chat template does not mark the assistant's turns, which assistant-only loss needs",
                              "loss on every token"))
    elif category == "EVAL_CONFIG":
        out.append(patch("eval_strategy", _enum(c, "eval_strategy"), "EVAL_STRATEGY_NO",
                          "evaluation is on but there is no evaluation data", "no evaluation"))
        out.append(patch("dataset.eval_split", f"{c.dataset.eval_split:g}", "0.05",
                          "or hold out part of the training data for evaluation", "evaluation on 5% of the rows"))
    elif category == "SEQUENCE_TOO_LONG":
        positions = facts.get("max_positions")
        if facts.get("cause") == "dropped":
            whole = re.search(r"max_seq_length (\d+) keeps every example whole", facts.get("message") or "")
            longer = int(whole[1]) if whole else c.max_seq_length * 2  # the trainer says what keeps them all
            longer = min(longer, positions) if positions else longer
            if longer > c.max_seq_length:
                out.append(patch("max_seq_length", c.max_seq_length, longer,
                                  "every example was cut away: its prompt alone is longer than max_seq_length",
                                  "examples keep their completions; memory grows with the length"))
        elif positions and c.max_seq_length > positions:
            out.append(patch("max_seq_length", c.max_seq_length, positions,
                              f"the model has {positions} positions; longer sequences index past its position table",
                              "longer examples are truncated to what the model supports"))
        elif c.max_seq_length:
            out.append(patch("max_seq_length", c.max_seq_length, "at most the model's max_position_embeddings",
                              "sequences are longer than the model supports", "longer examples are truncated"))
    elif category == "GPU_UNAVAILABLE":
        if c.adapter == C.ADAPTER_QLORA:
            out.append(patch("adapter", "ADAPTER_QLORA", "ADAPTER_LORA",
                              "4-bit quantization needs a GPU and none is usable here",
                              "trains without a GPU (slowly) or on any worker"))
        if c.precision in (C.PRECISION_FP16, C.PRECISION_BF16):
            out.append(patch("precision", _enum(c, "precision"), "PRECISION_AUTO",
                              "half precision was asked for a GPU that is not there", "fp32 on CPU, bf16 on a GPU"))
    elif category == "TOKEN_ID_OUT_OF_RANGE":
        out.append(patch("base_model", c.base_model, f"{c.base_model} with its own tokenizer",
                          "the tokenizer produces ids beyond the model's embedding table (mismatched tokenizer "
                          "or added tokens without resizing)", "token ids fit the embeddings"))
    elif category == "DISK_FULL":
        limit = c.save_total_limit
        if limit != 1:
            out.append(patch("save_total_limit", limit or "unlimited", 1,
                              "keep fewer checkpoints on disk", "disk use of one checkpoint"))
        if c.save_steps:
            out.append(patch("save_steps", c.save_steps, c.save_steps * 2, "save half as often", ""))
    elif category == "DATASET_SCHEMA" and facts.get("cause") == "columns_absent":
        present = facts.get("columns") or []
        mapping = columns.guess(present) or {}
        out.append(patch("dataset.columns", columns.as_text(dict(c.dataset.columns)), columns.as_text(mapping),
                          "the mapping names columns the rows do not have; "
                          + (f"read {', '.join(f'{t} as {s}' for s, t in mapping.items())}" if mapping else
                             f"the rows' own columns ({', '.join(present)}) are read as they are"),
                          "the rows are read in the format their columns make up"))
    elif category == "DATASET_SCHEMA" and facts.get("cause") == "mixed_kinds":
        out.append(patch("dataset.uri", c.dataset.uri or "unset", "rows whose columns are all text or all turns",
                          "one column of each row is a list of turns and the other plain text (e.g. a text prompt "
                          "with a completion of turns); no format joins the two: write both as text, or both as "
                          "lists of {role, content} turns", ""))
    elif category == "DATASET_SCHEMA" and facts.get("cause") == "method":
        dpo = c.method == C.METHOD_DPO
        out.append(patch("method", _enum(c, "method"), "METHOD_SFT" if dpo else "METHOD_DPO",
                          "the rows are for supervised fine-tuning; DPO needs prompt/chosen/rejected rows" if dpo else
                          "the rows are preference pairs (chosen/rejected), which DPO trains on",
                          "the method the rows were made for"))
    elif category == "DATASET_SCHEMA" and (guessed := columns.guess(facts.get("columns") or [])):
        named = ", ".join(f"{theirs} as {standard}" for standard, theirs in guessed.items())
        out.append(patch("dataset.columns", columns.as_text(dict(c.dataset.columns)) if c.dataset.columns else "unset",
                          columns.as_text(guessed), f"the rows hold a format's columns under other names: read {named}",
                          "the rows are read in the format their columns make up"))
    elif category == "DATASET_SCHEMA" and c.dataset.format not in (C.DATASET_FORMAT_UNSPECIFIED,
                                                                      C.DATASET_FORMAT_AUTO):
        out.append(patch("dataset.format", _enum(c.dataset, "format"), "DATASET_FORMAT_AUTO",
                          "the rows do not have the columns of the format the job forced; auto reads the format "
                          "from the columns", "the format the rows are in"))
    elif category in ("DATASET_FORMAT", "DATASET_NOT_FOUND") and facts.get("cause") == "prompts":
        out.append(patch("samples.prompts_uri", c.samples.prompts_uri or "unset", "",
                          "the file of sample prompts is not there or cannot be read as prompts (a text file, a "
                          "prompt a line, or JSONL rows of messages or prompt); without it the job trains and answers "
                          "its other prompts",
                          "training runs; answers to that file's prompts are not generated"))
    elif category == "DATASET_FORMAT" and facts.get("cause") == "no_rows":
        out.append(patch("dataset.uri", c.dataset.uri or "unset", "a file that holds rows",
                          "the dataset gave no rows at all: the file is empty, or the path or pattern matches no file",
                          ""))
    elif category in ("DATASET_NOT_FOUND", "DATASET_SCHEMA", "DATASET_FORMAT"):
        field = "dataset.format" if category == "DATASET_SCHEMA" else "dataset.uri"
        current = _enum(c.dataset, "format") if category == "DATASET_SCHEMA" else c.dataset.uri
        hint = {"DATASET_NOT_FOUND": "a file that exists on the trainer (relative paths are under FTLAB_HOME/datasets)",
                "DATASET_SCHEMA": "the format matching the columns: messages, alpaca, prompt/completion or preference",
                "DATASET_FORMAT": "a readable JSONL/JSON/CSV/Parquet file with valid rows"}[category]
        out.append(patch(field, current or "unset", hint, "the data cannot be used as given", ""))
    elif category == "MODEL_NOT_FOUND":
        no_tokenizer = "backend tokenizer" in (facts.get("message") or "")
        out.append(patch("base_model", c.base_model or "unset", "a local path or a hub id reachable from the trainer",
                          "transformers found no tokenizer it can read in the folder: name the folder that holds "
                          "config.json, the weights and tokenizer.json (or, for a model with only a slow tokenizer "
                          "such as tokenizer.model, install sentencepiece or tiktoken on the trainer)"
                          if no_tokenizer else "the model could not be found or downloaded (offline?)", ""))
    elif category == "CHECKPOINT_CORRUPT" and phase == "MODEL_LOAD" and not facts.get("resuming"):
        out.append(patch("base_model", c.base_model or "unset", "the same model with its files whole (copy or "
                          "download it again)", "the base model's own files are damaged or do not fit its config, "
                          "not a checkpoint of the job's: a retry from a checkpoint loads the same files", ""))
    elif category == "CHECKPOINT_NOT_FOUND" or category == "CHECKPOINT_CORRUPT":
        out.append(patch("checkpoint", "the one named", "latest (or none)",
                          "retry from another checkpoint: the chosen one is missing or damaged", ""))
    elif category == "DEPENDENCY_MISSING" and facts.get("cause") == "tracker":
        missing = (facts.get("message") or "").split(":", 1)[0].removeprefix("report_to ").strip()
        now = [C.Tracker.Name(t).removeprefix("TRACKER_").lower() for t in c.report_to]
        out.append(patch("report_to", "[" + ",".join(now) + "]", "[" + ",".join(t for t in now if t != missing) + "]",
                          f"{missing} is not installed on the trainer; the other trackers, and the run, need it not",
                          "the run trains and reports to the trackers that are there"))
    elif category == "DEPENDENCY_MISSING" and c.attn_implementation.startswith("flash"):
        out.append(patch("attn_implementation", c.attn_implementation, "sdpa",
                          f"{c.attn_implementation} needs a package this worker lacks; sdpa is PyTorch's own "
                          "fused attention, always there", "the same results, without the extra package"))
    elif category == "INVALID_CONFIG" and facts.get("cause") == "model_config":
        found = re.search(r"config\.json: (.*?): its attention layers", facts.get("message") or "", re.S)
        out.append(heads_misfit(c, found[1] if found else "its attention head counts do not fit its weights"))
    elif category == "INVALID_CONFIG" and re.search(r"test_size|train_size|train set will be empty",
                                                     facts.get("message") or ""):
        out.append(eval_split(c))
    elif category == "STUCK" and c.dataloader_num_workers != 0:
        out.append(patch("dataloader_num_workers", c.dataloader_num_workers, 0,
                          "hung runs are most often data-loading workers deadlocked", "data loads in the main process"))
    return out
