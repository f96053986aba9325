"""Resolve a job's config (defaults <- template <- overrides) and validate it field by field."""

from __future__ import annotations

from ftlab.v1 import analyzer_pb2, config_pb2, job_pb2
from services.common import columns
from services.common.errors import FieldViolation, InvalidArgument
from services.scheduler import templates

Config = config_pb2.TrainingConfig
ATTENTION = ("auto", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention", "eager")
MAX_ATTEMPTS = 100
MAX_BACKOFF_SECONDS = 86400.0  # a day: a longer wait is a mistake, and a far one overflows a timestamp
MAX_TIMEOUT_SECONDS = 7 * 86400.0
CATEGORIES = frozenset(n.removeprefix("FAILURE_CATEGORY_") for n in analyzer_pb2.FailureCategory.keys()
                       if n != "FAILURE_CATEGORY_UNSPECIFIED")


def overlay(base: Config, changes: Config) -> Config:
    """`base` with every field set in `changes` replaced (lists replaced, not appended)."""
    out = Config()
    out.CopyFrom(base)
    out.MergeFrom(changes)
    if changes.lora.target_modules:
        del out.lora.target_modules[:]
        out.lora.target_modules.extend(changes.lora.target_modules)
    if changes.dataset.columns:  # a mapping replaces the one before, whole
        out.dataset.columns.clear()
        out.dataset.columns.update(changes.dataset.columns)
    return out


def resolve(template_name: str, overrides: Config) -> Config:
    """The full config of a job: every field set. Raises InvalidArgument for an unknown template."""
    name = template_name or "basic"
    template = templates.get_template(name)
    if template is None:
        known = ", ".join(t.name for t in templates.list_templates())
        raise InvalidArgument(
            f"unknown template {name!r}",
            violations=[FieldViolation("template", f"unknown template {name!r}; known: {known}")],
        )
    config = overlay(overlay(templates.defaults(), template.config), overrides)
    if config.method == config_pb2.METHOD_DPO and not overrides.HasField("padding_free"):
        config.padding_free = False  # a default for SFT; TRL's DPO pads
    validate(config)
    return config


def _check(violations: list[FieldViolation], ok: bool, field: str, description: str) -> None:
    if not ok:
        violations.append(FieldViolation(f"config.{field}", description))


def validate(c: Config) -> None:
    """Raise InvalidArgument listing every bad field of a resolved config."""
    v: list[FieldViolation] = []
    _check(v, bool(c.base_model.strip()), "base_model", "required: a hub id or a path on the trainer")
    _check(v, bool(c.dataset.uri.strip()), "dataset.uri", "required: a dataset path or id")
    if c.adapter in (config_pb2.ADAPTER_LORA, config_pb2.ADAPTER_QLORA):
        _check(v, 1 <= c.lora.rank <= 1024, "lora.rank", f"must be in 1..1024, got {c.lora.rank}")
        _check(v, 0 < c.lora.alpha <= 1e6, "lora.alpha", f"must be in (0, 10^6], got {c.lora.alpha:g}")
        _check(v, 0 <= c.lora.dropout < 1, "lora.dropout", f"must be in [0, 1), got {c.lora.dropout:g}")
        _check(v, all(m.strip() for m in c.lora.target_modules), "lora.target_modules", "names must not be empty")
    _check(v, 0 <= c.seed < 1 << 32, "seed", f"must be in 0..4294967295, got {c.seed}")
    _check(v, 16 <= c.max_seq_length <= 1 << 20, "max_seq_length", f"must be in 16..1048576, got {c.max_seq_length}")
    _check(v, 0 <= c.max_steps <= 10**9, "max_steps", f"must be 0 (use num_epochs) or in 1..10^9, got {c.max_steps}")
    _check(v, c.max_steps > 0 or c.num_epochs > 0, "num_epochs", f"must be positive when max_steps is 0, got {c.num_epochs:g}")
    _check(v, 0 <= c.num_epochs <= 10**6, "num_epochs", f"must be in 0..10^6, got {c.num_epochs:g}")
    for field in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        value = getattr(c, field)
        _check(v, 1 <= value <= 65536, field, f"must be in 1..65536, got {value}")
    _check(v, 0 < c.learning_rate <= 1, "learning_rate", f"must be in (0, 1], got {c.learning_rate:g}")
    _check(v, 0 <= c.warmup_ratio < 1, "warmup_ratio", f"must be in [0, 1), got {c.warmup_ratio:g}")
    _check(v, 0 <= c.weight_decay <= 100, "weight_decay", f"must be in 0..100, got {c.weight_decay:g}")
    _check(v, 0 <= c.max_grad_norm <= 1e9, "max_grad_norm",
           f"must be in 0..10^9 (0 = no clipping), got {c.max_grad_norm:g}")
    _check(v, 0 <= c.dataset.eval_split < 1, "dataset.eval_split", f"must be in [0, 1), got {c.dataset.eval_split:g}")
    for problem in columns.check(dict(c.dataset.columns)):
        v.append(FieldViolation("config.dataset.columns", problem))
    if c.eval_strategy != config_pb2.EVAL_STRATEGY_NO:
        _check(v, c.dataset.eval_split > 0 or bool(c.dataset.eval_uri), "eval_strategy",
               "evaluation needs data: set dataset.eval_split > 0 or dataset.eval_uri, or eval_strategy NO")
    if c.eval_strategy == config_pb2.EVAL_STRATEGY_STEPS:
        _check(v, c.eval_steps >= 1, "eval_steps", f"must be positive with EVAL_STRATEGY_STEPS, got {c.eval_steps}")
    _check(v, c.save_steps >= 0, "save_steps", f"must not be negative, got {c.save_steps}")
    _check(v, c.save_total_limit >= 0, "save_total_limit", f"must not be negative, got {c.save_total_limit}")
    _check(v, c.keep_best_checkpoints >= 0, "keep_best_checkpoints",
           f"must not be negative, got {c.keep_best_checkpoints}")
    _check(v, -1 <= c.dataloader_num_workers <= 64, "dataloader_num_workers",
           f"must be in 0..64, or -1 to size them to the machine, got {c.dataloader_num_workers}")
    _check(v, 1 <= c.dataloader_prefetch_factor <= 1024, "dataloader_prefetch_factor", "must be in 1..1024")
    _check(v, c.logging_steps >= 1, "logging_steps", f"must be positive, got {c.logging_steps}")
    _check(v, c.num_gpus >= 0, "num_gpus", f"must not be negative, got {c.num_gpus}")
    _check(v, c.eval_accumulation_steps >= 0, "eval_accumulation_steps", "must not be negative")
    _check(v, 0 <= c.early_stopping_patience <= 10**6, "early_stopping_patience",
           f"must be 0 (off) or a number of evaluations, got {c.early_stopping_patience}")
    _check(v, c.early_stopping_patience == 0 or c.eval_strategy != config_pb2.EVAL_STRATEGY_NO,
           "early_stopping_patience", "early stopping compares evaluations: set eval_strategy STEPS or EPOCH")
    _check(v, 0 <= c.early_stopping_threshold <= 1e6, "early_stopping_threshold",
           f"must be in 0..10^6, got {c.early_stopping_threshold:g}")
    _check_samples(v, c.samples)
    _check(v, c.divergence_factor == 0 or 1 < c.divergence_factor <= 1e9, "divergence_factor",
           f"must be 0 (off) or in (1, 10^9], got {c.divergence_factor:g}")
    _check(v, c.attn_implementation in ATTENTION, "attn_implementation",
           f"must be one of {', '.join(ATTENTION)}, got {c.attn_implementation!r}")
    _check(v, c.num_gpus <= 64, "num_gpus", f"must be at most 64 (one node), got {c.num_gpus}")
    dpo = c.method == config_pb2.METHOD_DPO
    preference = c.dataset.format == config_pb2.DATASET_FORMAT_PREFERENCE
    if dpo:
        _check(v, 0 < c.dpo_beta <= 1000, "dpo_beta", f"must be in (0, 1000], got {c.dpo_beta:g}")
        _check(v, not c.packing, "packing", "packing applies to SFT only")
        _check(v, not c.padding_free, "padding_free", "padding-free batches apply to SFT only (TRL's DPO pads)")
        _check(v, c.dataset.format in (config_pb2.DATASET_FORMAT_AUTO, config_pb2.DATASET_FORMAT_PREFERENCE),
               "dataset.format", "DPO needs preference data (chosen/rejected)")
    else:
        _check(v, not preference, "dataset.format", "preference data needs method DPO")
    if v:
        raise InvalidArgument(f"invalid config: {v[0].field}: {v[0].description}", violations=v)


MAX_SAMPLE_PROMPTS = 16


def _check_samples(v: list[FieldViolation], s: config_pb2.SampleConfig) -> None:
    _check(v, len(s.prompts) <= MAX_SAMPLE_PROMPTS, "samples.prompts",
           f"at most {MAX_SAMPLE_PROMPTS} prompts, got {len(s.prompts)}")
    _check(v, all(0 < len(p.strip()) and len(p) <= 8000 for p in s.prompts), "samples.prompts",
           "each prompt must be 1 to 8000 characters")
    _check(v, 1 <= s.max_new_tokens <= 4096, "samples.max_new_tokens", f"must be in 1..4096, got {s.max_new_tokens}")
    _check(v, 0 <= s.temperature <= 10, "samples.temperature", f"must be in 0..10 (0: greedy), got {s.temperature:g}")
    _check(v, 0 <= s.seed < 1 << 32, "samples.seed", f"must be in 0..4294967295, got {s.seed}")


def validate_policy(retry: job_pb2.RetryPolicy, watchdog: job_pb2.WatchdogConfig) -> None:
    """Raise InvalidArgument listing every bad field of a job's retry policy and watchdog."""
    v: list[FieldViolation] = []

    def count(field: str, value: int) -> None:
        if not 0 <= value <= MAX_ATTEMPTS:
            v.append(FieldViolation(field, f"must be in 0..{MAX_ATTEMPTS}, got {value}"))

    if retry.HasField("max_attempts"):
        count("retry_policy.max_attempts", retry.max_attempts)
    if retry.HasField("max_worker_losses"):
        count("retry_policy.max_worker_losses", retry.max_worker_losses)
    if retry.HasField("backoff_seconds") and not 0 <= retry.backoff_seconds <= MAX_BACKOFF_SECONDS:
        v.append(FieldViolation("retry_policy.backoff_seconds",
                                f"must be in 0..{MAX_BACKOFF_SECONDS:g} seconds, got {retry.backoff_seconds:g}"))
    for name, table in (("max_attempts_by_category", retry.max_attempts_by_category),
                        ("auto_recover", retry.auto_recover)):
        for key, value in table.items():
            field = f"retry_policy.{name}[{key[:40]}]"
            if name == "max_attempts_by_category" and key not in CATEGORIES:
                v.append(FieldViolation(field, "not a failure category (CUDA_OOM, HOST_OOM, ...)"))
            count(field, value)
    for timeout in ("step_timeout_seconds", "model_load_timeout_seconds", "eval_timeout_seconds",
                    "checkpoint_timeout_seconds"):
        if watchdog.HasField(timeout) and not 0 < getattr(watchdog, timeout) <= MAX_TIMEOUT_SECONDS:
            v.append(FieldViolation(f"watchdog.{timeout}", f"must be in (0, {MAX_TIMEOUT_SECONDS:g}] seconds, "
                                    f"got {getattr(watchdog, timeout):g}"))
    if v:
        raise InvalidArgument(f"invalid request: {v[0].field}: {v[0].description}", violations=v)
