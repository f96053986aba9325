"""A job's resolved config as `ftlab get` shows it: every field, grouped as a person looks for them,
in the words a job file uses, with what the job changed from its template marked."""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf import json_format
from rich.console import Console
from rich.markup import escape

from ftlab.v1 import config_pb2
from services.cli.render import in_words

# (group, fields as dotted paths of TrainingConfig); tests/unit/test_config_view.py checks that every
# field is in exactly one group, so a new field cannot be left out of `get`
GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("model", ("base_model", "attn_implementation", "chat_template", "max_seq_length")),
    ("data", ("dataset.uri", "dataset.format", "dataset.columns", "dataset.eval_uri", "dataset.eval_split",
              "packing", "assistant_only_loss")),
    ("method and adapter", ("method", "adapter", "lora.rank", "lora.alpha", "lora.dropout", "lora.target_modules",
                            "dpo_beta")),
    ("optimization", ("num_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
                      "learning_rate", "lr_scheduler", "warmup_ratio", "weight_decay", "max_grad_norm", "optimizer",
                      "seed", "divergence_factor")),
    ("evaluation", ("eval_strategy", "eval_steps", "per_device_eval_batch_size", "eval_accumulation_steps",
                    "early_stopping_patience", "early_stopping_threshold", "samples.prompts", "samples.prompts_uri",
                    "samples.max_new_tokens", "samples.temperature", "samples.seed")),
    ("checkpoints and logging", ("save_steps", "save_total_limit", "keep_best_checkpoints", "logging_steps",
                                 "report_to")),
    ("speed", ("precision", "gradient_checkpointing", "padding_free", "liger_kernel", "torch_compile",
               "auto_micro_batch", "dataloader_num_workers", "dataloader_prefetch_factor", "num_gpus")),
]


def _flat(config: config_pb2.TrainingConfig) -> dict[str, object]:
    """Dotted field path -> value in words; a field never set reads None."""
    values = in_words(json_format.MessageToDict(config, preserving_proto_field_name=True))
    out: dict[str, object] = {}
    for _, fields in GROUPS:
        for path in fields:
            node: object = values
            for part in path.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            out[path] = node
    return out


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and "\n" in value:
        return f"({len(value.splitlines())} lines of Jinja)"
    return str(value)


def rows(config: config_pb2.TrainingConfig,
         template: config_pb2.TrainingConfig | None) -> Iterator[tuple[str, list[tuple[str, str, str | None]]]]:
    """(group, [(field, value, template value or None where the job keeps the template's)])."""
    mine, base = _flat(config), _flat(template) if template is not None else {}
    for group, fields in GROUPS:
        yield group, [(path, _text(mine[path]),
                       _text(base.get(path)) if template is not None and mine[path] != base.get(path) else None)
                      for path in fields]


def print_config(console: Console, config: config_pb2.TrainingConfig, template: config_pb2.TrainingConfig | None,
                 template_name: str) -> None:
    """The grouped config; a field the job set apart from its template is marked `*`, with the
    template's value beside it."""
    console.print(f"  config (* = changed from template {template_name}):" if template is not None
                  else "  config:", highlight=False)
    width = max(len(path) for _, fields in GROUPS for path in fields)
    for group, fields in rows(config, template):
        console.print(f"    [bold]{group}[/]")
        for path, value, was in fields:
            mark = "*" if was is not None else " "
            note = f"  [dim](template: {escape(was)})[/]" if was not in (None, "-") else ""
            console.print(f"     {mark} {path:<{width}}  {escape(value)}{note}", highlight=False, soft_wrap=True)
