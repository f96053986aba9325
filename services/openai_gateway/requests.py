"""OpenAI's fine-tuning request as a FineTune Lab job: `model`, files, `hyperparameters` and `method`
mapped onto a TrainingConfig over the `basic` template, the rest kept on the job's metadata.

| OpenAI                                   | FineTune Lab                                               |
|------------------------------------------|------------------------------------------------------------|
| model                                    | base_model (a name of the gateway's alias table, else a hub id or a path on the trainers) |
| training_file / validation_file          | dataset.uri / dataset.eval_uri (uploads); a validation file turns evaluation on (eval_strategy steps) |
| hyperparameters.n_epochs                 | num_epochs ("auto": the template's)                        |
| hyperparameters.batch_size               | per_device_train_batch_size, gradient_accumulation_steps 1 ("auto": the template's) |
| hyperparameters.learning_rate_multiplier | learning_rate = the template's learning rate x the multiplier ("auto": 1) |
| method.type supervised / dpo             | method SFT / DPO; method.dpo.hyperparameters.beta is dpo_beta ("auto": 0.1) |
| suffix                                   | the job's display name, and the model's name: ft:{model}:{suffix}:{job id} |
| seed                                     | seed                                                       |
| metadata                                 | the job's metadata, as given                               |
| integrations [{type: wandb}]             | report_to [wandb] (offline, into the job's logs); kept as given |
"""

from __future__ import annotations

import json
import re
from typing import Any

from ftlab.v1 import config_pb2, job_service_pb2
from services.openai_gateway.shapes import INTEGRATIONS_KEY, MODEL_KEY, SUFFIX_KEY, Invalid, dataset_of

KNOWN = {"model", "training_file", "validation_file", "hyperparameters", "method", "suffix", "seed", "metadata",
         "integrations"}
_SUFFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _number(value: Any, param: str, kind: type, low: float, high: float) -> Any:
    if value == "auto" or value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise Invalid(f"{param} must be 'auto' or a{'n integer' if kind is int else ' number'}", param)
    if not low <= value <= high:
        raise Invalid(f"{param} must be in [{low:g}, {high:g}], got {value}", param)
    return kind(value)


def _hyperparameters(config: config_pb2.TrainingConfig, values: Any, prefix: str, template_lr: float) -> None:
    if values is None:
        return
    if not isinstance(values, dict):
        raise Invalid(f"{prefix} must be an object", prefix)
    unknown = sorted(set(values) - {"n_epochs", "batch_size", "learning_rate_multiplier", "beta"})
    if unknown:
        raise Invalid(f"{prefix}: unknown hyperparameter {unknown[0]!r}", f"{prefix}.{unknown[0]}")
    epochs = _number(values.get("n_epochs"), f"{prefix}.n_epochs", int, 1, 50)
    if epochs is not None:
        config.num_epochs = epochs
    batch = _number(values.get("batch_size"), f"{prefix}.batch_size", int, 1, 256)
    if batch is not None:
        config.per_device_train_batch_size, config.gradient_accumulation_steps = batch, 1
    multiplier = _number(values.get("learning_rate_multiplier"), f"{prefix}.learning_rate_multiplier", float, 1e-6,
                         100)
    if multiplier is not None:
        config.learning_rate = template_lr * multiplier
    if "beta" in values:
        beta = _number(values["beta"], f"{prefix}.beta", float, 1e-6, 10)
        if beta is not None:
            config.dpo_beta = beta


def job_request(body: Any, aliases: dict[str, str], template_lr: float) -> job_service_pb2.CreateJobRequest:
    """The CreateJobRequest of an OpenAI `fine_tuning.jobs.create` body; Invalid naming the parameter."""
    if not isinstance(body, dict):
        raise Invalid("the request body must be a JSON object")
    unknown = sorted(set(body) - KNOWN)
    if unknown:
        raise Invalid(f"Unrecognized request argument supplied: {unknown[0]}", unknown[0])
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise Invalid("you must provide a model", "model")
    config = config_pb2.TrainingConfig(base_model=aliases.get(model, model))
    config.dataset.uri = dataset_of(body.get("training_file") or "", "training_file")
    if body.get("validation_file"):
        config.dataset.eval_uri = dataset_of(body["validation_file"], "validation_file")
        config.eval_strategy = config_pb2.EVAL_STRATEGY_STEPS
    metadata: dict[str, str] = {MODEL_KEY: model}
    _hyperparameters(config, body.get("hyperparameters"), "hyperparameters", template_lr)
    method = body.get("method")
    if method is not None:
        if not isinstance(method, dict) or method.get("type") not in ("supervised", "dpo", "reinforcement"):
            raise Invalid("method.type must be 'supervised' or 'dpo'", "method.type")
        if method["type"] == "reinforcement":
            raise Invalid("reinforcement fine-tuning is not supported here: use 'supervised' or 'dpo'", "method.type",
                          code="unsupported_method")
        if method["type"] == "dpo":
            config.method = config_pb2.METHOD_DPO
        inner = method.get(method["type"]) or {}
        if not isinstance(inner, dict):
            raise Invalid(f"method.{method['type']} must be an object", f"method.{method['type']}")
        _hyperparameters(config, inner.get("hyperparameters"), f"method.{method['type']}.hyperparameters",
                         template_lr)
    suffix = body.get("suffix")
    if suffix is not None:
        if not isinstance(suffix, str) or not _SUFFIX.match(suffix):
            raise Invalid("suffix must be 1 to 64 letters, digits, - or _", "suffix")
        metadata[SUFFIX_KEY] = suffix
    if body.get("seed") is not None:
        config.seed = _number(body["seed"], "seed", int, 0, 2**32 - 1)
    own = body.get("metadata") or {}
    if not isinstance(own, dict) or len(own) > 16 or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512 for k, v in own.items()):
        raise Invalid("metadata: at most 16 string pairs, keys up to 64 characters, values up to 512", "metadata")
    if any(k.startswith("openai.") for k in own):
        raise Invalid("metadata keys starting with 'openai.' are the gateway's own", "metadata")
    metadata.update(own)
    integrations = body.get("integrations")
    if integrations:
        if not isinstance(integrations, list) or any(not isinstance(i, dict) or i.get("type") != "wandb"
                                                     for i in integrations):
            raise Invalid("only integrations of type 'wandb' are supported (offline, into the job's logs)",
                          "integrations", code="unsupported_integration")
        config.report_to.append(config_pb2.TRACKER_WANDB)
        metadata[INTEGRATIONS_KEY] = json.dumps(integrations)[:512]
    return job_service_pb2.CreateJobRequest(config=config, template="basic", display_name=suffix or "",
                                            metadata=metadata)
