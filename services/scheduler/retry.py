"""Resume with changes: a failed job's config, changed by the analyzer's suggestions and the user's
own changes, each change recorded with its reason; and how much of the old checkpoint can be reused.

Pure functions over protos; JobManager.retry does the I/O.
"""

from __future__ import annotations

import re

from google.protobuf import json_format

from ftlab.config import ConfigError, apply_set
from ftlab.v1 import analyzer_pb2, config_pb2
from services.scheduler import jobconfig

Config = config_pb2.TrainingConfig
# Failure categories whose suggestions are safe to apply without a person: resources and stability.
AUTO_RECOVERABLE = frozenset({"CUDA_OOM", "HOST_OOM", "NAN_OR_DIVERGENCE", "DISK_FULL"})
# Changing these makes the old checkpoint's weights the wrong shape or kind: start from the base model.
_FRESH = ("base_model", "method", "lora.rank", "lora.target_modules")
# Changing these keeps the weights but not the optimizer and schedule state, which would undo them.
_WEIGHTS_ONLY = ("learning_rate", "lr_scheduler", "warmup_ratio", "weight_decay", "precision", "adapter")
# Fields whose suggestions are advice to a person (which model, which file), never applied as values.
_ADVICE_ONLY = frozenset({"base_model", "dataset.uri", "dataset.eval_uri", "chat_template", "checkpoint"})
_PARENT_CHECKPOINT = re.compile(r"^jobs/([0-9a-f]{16})/checkpoints/(checkpoint-\d+)$")


def _text(config: Config, path: str) -> str:
    data = json_format.MessageToDict(config, preserving_proto_field_name=True)
    for part in path.split("."):
        data = data.get(part) if isinstance(data, dict) else None
        if data is None:
            return "unset"
    return ",".join(map(str, data)) if isinstance(data, list) else str(data)


def _leaves(config: Config, prefix: str = "") -> list[str]:
    """Dotted paths of the fields set in `config`."""
    out = []
    for field, value in config.ListFields():
        path = prefix + field.name
        if field.message_type is not None and not field.is_repeated:
            out += _leaves(value, path + ".")
        else:
            out.append(path)
    return out


def apply_suggestions(config: Config, analysis: analyzer_pb2.FailureAnalysis) -> tuple[Config, list[str]]:
    """`config` with every suggestion whose value is a setting applied; the reasons of those skipped
    (advice in words, e.g. "a local path or a hub id", or fields that are not config)."""
    out = Config()
    out.CopyFrom(config)
    skipped = []
    for s in analysis.suggestions:
        if s.field in _ADVICE_ONLY or any(ch.isspace() for ch in s.suggested.strip()):
            skipped.append(f"{s.field}: {s.suggested}")  # words for a person, not a value
            continue
        try:
            apply_set(out, f"{s.field}={s.suggested}")
        except (ConfigError, ValueError):
            skipped.append(f"{s.field}: {s.suggested}")
    return out, skipped


def changes(old: Config, new: Config, reasons: dict[str, str]) -> list[analyzer_pb2.ConfigPatch]:
    """One patch per field whose value differs, with its reason."""
    paths = sorted(set(_leaves(old)) | set(_leaves(new)))
    return [analyzer_pb2.ConfigPatch(field=p, current=_text(old, p), suggested=_text(new, p),
                                     reason=reasons.get(p, "changed by the user"))
            for p in paths if _text(old, p) != _text(new, p)]


def resume_mode(patches: list[analyzer_pb2.ConfigPatch], old: Config, new: Config) -> str:
    """"full" (weights, optimizer, schedule, data position), "weights" (weights only), or "none"."""
    fields = {p.field for p in patches}
    adapters = (old.adapter, new.adapter)
    lora_to_qlora = adapters == (config_pb2.ADAPTER_LORA, config_pb2.ADAPTER_QLORA) or \
        adapters == (config_pb2.ADAPTER_QLORA, config_pb2.ADAPTER_LORA)
    if fields & set(_FRESH) or ("adapter" in fields and not lora_to_qlora):
        return "none"
    if fields & set(_WEIGHTS_ONLY):
        return "weights"
    return "full"


def new_config(parent: Config, analysis: analyzer_pb2.FailureAnalysis | None, user: Config,
               with_suggestions: bool) -> tuple[Config, list[analyzer_pb2.ConfigPatch], list[str]]:
    """The retry's config (suggestions first, the user's changes over them), validated, and its changes."""
    config, skipped, reasons = parent, [], {}
    if with_suggestions and analysis is not None:
        config, skipped = apply_suggestions(parent, analysis)
        reasons = {s.field: f"suggested by the analyzer: {s.reason}" for s in analysis.suggestions}
    config = jobconfig.overlay(config, user)
    for path in _leaves(user):
        reasons[path] = "changed by the user"
    jobconfig.validate(config)
    return config, changes(parent, config, reasons), skipped


def parent_checkpoint(parent_id: str, name: str) -> str:
    return f"jobs/{parent_id}/checkpoints/{name}"


def split_parent_checkpoint(ref: str) -> tuple[str, str] | None:
    """(job id, checkpoint name) of a parent's checkpoint reference, or None for a name of the job's own."""
    m = _PARENT_CHECKPOINT.match(ref)
    return (m.group(1), m.group(2)) if m else None


def weights_only(resume_checkpoint: str, patches: list[analyzer_pb2.ConfigPatch]) -> bool:
    """Whether a run resuming from `resume_checkpoint` takes only its weights (see resume_mode)."""
    return split_parent_checkpoint(resume_checkpoint) is not None and any(p.field in _WEIGHTS_ONLY for p in patches)
