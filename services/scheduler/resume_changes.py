"""Resume with changes: a failed job's config, changed by the analyzer's suggestions and the user's
own changes, each change recorded with its reason; and how much of the old checkpoint can be reused.

Pure functions over protos; JobManager.retry does the I/O.
"""

from __future__ import annotations

from google.protobuf import json_format

from ftlab.config import ConfigError, apply_set
from ftlab.v1 import analyzer_pb2, config_pb2
from services.common import chat_templates, checkpoints
from services.scheduler import jobconfig

Config = config_pb2.TrainingConfig
# Failure categories whose suggestions are safe to apply without a person: resources and stability.
AUTO_RECOVERABLE = frozenset({"CUDA_OOM", "HOST_OOM", "NAN_OR_DIVERGENCE", "DISK_FULL"})
# Changing these makes the old checkpoint's weights the wrong shape or kind: start from the base model.
_FRESH = frozenset({"base_model", "method", "lora.rank", "lora.target_modules"})
# Changing these keeps the weights but not the optimizer and schedule state, which would undo them.
_WEIGHTS_ONLY = frozenset({"learning_rate", "lr_scheduler", "warmup_ratio", "weight_decay", "precision", "adapter"})
# Fields whose suggestions are advice to a person (which model, which file), never applied as values;
# but a chat template suggested by name (chat_templates.NAMED, e.g. "chatml") is a value.
_ADVICE_ONLY = frozenset({"base_model", "dataset.uri", "dataset.eval_uri", "chat_template", "checkpoint"})


def _flat(config: Config) -> dict[str, str]:
    """The fields set in `config` as dotted paths and their values as text (lists comma-joined)."""
    out: dict[str, str] = {}

    def walk(data: dict[str, object], prefix: str) -> None:
        for key, value in data.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                out[prefix + key] = ",".join(map(str, value)) if isinstance(value, list) else str(value)

    walk(json_format.MessageToDict(config, preserving_proto_field_name=True), "")
    return out


def apply_suggestions(config: Config, analysis: analyzer_pb2.FailureAnalysis) -> tuple[Config, list[str]]:
    """`config` with every suggestion whose value is a setting applied; the reasons of those skipped
    (advice in words, e.g. "a local path or a hub id", or fields that are not config)."""
    out = Config()
    out.CopyFrom(config)
    skipped = []
    for s in analysis.suggestions:
        if not _apply(out, s):
            skipped.append(f"{s.field}: {s.suggested}")
    return out, skipped


def _apply(config: Config, s: analyzer_pb2.ConfigPatch) -> bool:
    """Set a suggested value; False for advice in words for a person, or a value the field cannot take."""
    named_template = s.field == "chat_template" and s.suggested.strip().lower() in chat_templates.NAMED
    if (s.field in _ADVICE_ONLY and not named_template) or any(ch.isspace() for ch in s.suggested.strip()):
        return False
    try:
        apply_set(config, f"{s.field}={s.suggested}")
    except (ConfigError, ValueError):
        return False
    return True


def changes(old: Config, new: Config, reasons: dict[str, str]) -> list[analyzer_pb2.ConfigPatch]:
    """One patch per field whose value differs, with its reason."""
    before, after = _flat(old), _flat(new)
    return [analyzer_pb2.ConfigPatch(field=p, current=before.get(p, "unset"), suggested=after.get(p, "unset"),
                                     reason=reasons.get(p, "changed by the user"))
            for p in sorted(before.keys() | after.keys()) if before.get(p) != after.get(p)]


def resume_mode(patches: list[analyzer_pb2.ConfigPatch], old: Config, new: Config) -> str:
    """"full" (weights, optimizer, schedule, data position), "weights" (weights only), or "none"."""
    fields = {p.field for p in patches}
    lora_to_qlora = {old.adapter, new.adapter} == {config_pb2.ADAPTER_LORA, config_pb2.ADAPTER_QLORA}
    if fields & _FRESH or ("adapter" in fields and not lora_to_qlora):
        return "none"
    if fields & _WEIGHTS_ONLY:
        return "weights"
    return "full"


def new_config(parent: Config, analysis: analyzer_pb2.FailureAnalysis | None, user: Config,
               with_suggestions: bool) -> tuple[Config, list[analyzer_pb2.ConfigPatch], list[str]]:
    """The retry's config (suggestions first, the user's changes over them), validated, and its changes."""
    config = parent
    skipped: list[str] = []
    reasons: dict[str, str] = {}
    if with_suggestions and analysis is not None:
        config, skipped = apply_suggestions(parent, analysis)
        reasons = {s.field: f"suggested by the analyzer: {s.reason}" for s in analysis.suggestions}
    config = jobconfig.overlay(config, user)
    reasons.update(dict.fromkeys(_flat(user), "changed by the user"))
    jobconfig.validate(config)
    return config, changes(parent, config, reasons), skipped


def weights_only(resume_checkpoint: str, patches: list[analyzer_pb2.ConfigPatch]) -> bool:
    """Whether a run resuming from `resume_checkpoint` takes only its weights (see resume_mode)."""
    return checkpoints.split_parent_ref(resume_checkpoint) is not None and any(p.field in _WEIGHTS_ONLY for p in patches)
