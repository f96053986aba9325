"""analyze(): a failed run's log, exit status, config and metrics in; a FailureAnalysis out."""

from __future__ import annotations

import re

from google.protobuf import json_format

from ftlab.v1 import analyzer_pb2, config_pb2, events_pb2, job_pb2
from services.analyzer import logparse, phases, priors, rules, signs, similar, suggestions
from services.common import columns
from services.common.errors import FieldViolation, InvalidArgument

_SUMMARY = {
    "CUDA_OOM": "The GPU ran out of memory",
    "HOST_OOM": "The machine ran out of host memory",
    "KILLED_BY_SIGNAL": "The training process was killed by a signal",
    "STUCK": "The run made no progress for too long and was stopped",
    "NAN_OR_DIVERGENCE": "The loss or gradients became NaN/inf: training diverged",
    "DATASET_NOT_FOUND": "The dataset file was not found",
    "DATASET_FORMAT": "The dataset could not be read",
    "DATASET_SCHEMA": "The dataset lacks the columns this method needs",
    "CHAT_TEMPLATE_MISSING": "The tokenizer has no chat template for conversational data",
    "CHAT_TEMPLATE_INCOMPATIBLE": "The chat template cannot do what the config asks",
    "MODEL_NOT_FOUND": "The base model could not be found or downloaded",
    "LORA_TARGET_MODULES": "The LoRA target modules do not exist in this model",
    "PRECISION_UNSUPPORTED": "The chosen precision cannot train here",
    "QUANTIZATION_UNSUPPORTED": "Quantization is unavailable or cannot train as configured",
    "DEPENDENCY_MISSING": "A required package is missing",
    "GPU_UNAVAILABLE": "A GPU was required but none is usable",
    "TOKEN_ID_OUT_OF_RANGE": "A token id exceeds the model's embedding table",
    "SEQUENCE_TOO_LONG": "A sequence is longer than the model or config allows",
    "CHECKPOINT_CORRUPT": "The checkpoint to load is damaged",
    "CHECKPOINT_NOT_FOUND": "The checkpoint to resume from does not exist",
    "DISK_FULL": "The disk filled up",
    "EVAL_CONFIG": "Evaluation is configured without evaluation data",
    "INVALID_CONFIG": "A setting is invalid",
    "UNKNOWN": "The run failed for a reason the analyzer does not recognise",
}


def error_log(error: job_pb2.JobError) -> str:
    """What the analyzer reads of a job's recorded error: its log tail and traceback, or its message."""
    return ("\n".join(p for p in (error.log_tail, error.traceback) if p) or error.message).replace("\x00", "")


def category_of(error: job_pb2.JobError) -> str:
    """The failure category of a recorded error, by the same rules as `analyze` (without the metrics
    and config a full analysis weighs): the scheduler's retry limits by category use it at once,
    before the full analysis arrives."""
    facts = rules.Facts(logparse.parse(error_log(error)), error.exit_code if error.HasField("exit_code") else None,
                        error.signal if error.HasField("signal") else None, error.type)
    category = rules.classify(facts)[0]
    if category == "UNKNOWN" and (match := similar.closest(facts.log, facts.error_type, facts.exit_code,
                                                           facts.signal)):
        category = match.category
    return category


def _config(request: analyzer_pb2.AnalyzeFailureRequest) -> config_pb2.TrainingConfig:
    config = config_pb2.TrainingConfig()
    try:
        json_format.Parse(request.config_json or "{}", config, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError) as exc:
        raise InvalidArgument("config_json is not a TrainingConfig",
                              violations=[FieldViolation("config_json", str(exc)[:300])]) from None
    return config


def analyze(request: analyzer_pb2.AnalyzeFailureRequest) -> analyzer_pb2.FailureAnalysis:
    if request.phase not in events_pb2.Phase.values():
        raise InvalidArgument("unknown phase", violations=[FieldViolation("phase", f"not a Phase (got {request.phase})")])
    config = _config(request)
    log = logparse.parse(request.log)
    signal = request.signal if request.HasField("signal") else None
    exit_code = request.exit_code if request.HasField("exit_code") else None
    facts = rules.Facts(log, exit_code, signal, request.error_type)
    category, confidence, cause = rules.classify(facts)
    if request.recent_metrics and category in ("UNKNOWN", "KILLED_BY_SIGNAL"):
        if any(_bad(m) for m in request.recent_metrics):
            category, confidence = "NAN_OR_DIVERGENCE", 0.8
    match = similar.closest(log, request.error_type, exit_code, signal) if category == "UNKNOWN" else None
    if match is not None:  # no rule decided: the closest known failures, where they agree closely enough
        category, confidence = match.category, round(min(0.6, match.score), 2)
    if category == "KILLED_BY_SIGNAL" and rules.killed_signal(facts) == rules.SIGKILL and not log.exception_type:
        confidence = 0.6  # the OOM killer also sends SIGKILL; the kernel log would tell
    phase = phases.refine(events_pb2.Phase.Name(request.phase).removeprefix("PHASE_"), log) if request.phase \
        else phases.infer_phase(log)
    if not phase:  # where the root cause was raised may tell
        phase = next((p[1] for r in log.chain if (p := priors.prior(r.frames)) and p[1]), "")
    phase_from_match = False
    if not phase and match is not None:
        phase, phase_from_match = match.nearest.phase, True
    evidence = [ln.strip() for ln in ([f.text for f in log.frames[-3:]] + [log.exception_line]) if ln.strip()]
    root = log.chain[0] if log.chain else None
    if root is not None and len(log.chain) > 1:
        evidence.append(f"root cause: {root.line.strip()[:300]}")
    if not log.exception_line:
        evidence += [ln.strip() for ln in log.lines if "nan" in ln.lower() and "{" in ln][:3]
        losses = [m["loss"] for m in log.metrics if isinstance(m.get("loss"), float)]
        if len(losses) > 1:  # the curve that decided it, where nothing was raised
            evidence.append(f"logged loss: first {losses[0]:g}, highest {max(losses):g}, last {losses[-1]:g}")
        evidence += [ln.strip() for ln in log.lines if ln.startswith("ftlab watchdog:")][-1:]
        sig = rules.killed_signal(facts)
        if sig:
            evidence.append(f"the process ended with signal {sig}")
    if match is not None:
        evidence.append(f"no rule decided; closest known failure: {match.nearest.cause[:160]} "
                        f"(similarity {match.similarity:.2f}" + ("; the phase is its" if phase_from_match else "") + ")")
    resuming = _resuming(log, config.base_model)
    summary = _SUMMARY[category]
    if category == "CHECKPOINT_CORRUPT" and phase == "MODEL_LOAD" and not resuming:
        summary = "The base model's own files are damaged or do not fit its config"
    elif cause == "mixed_kinds":
        summary = "The dataset's rows mix a column of turns with a column of plain text"
    if phase:
        summary += f" during {phase.lower().replace('_', ' ')}"
    message = root.message if root is not None else log.message
    if category == "UNKNOWN" and root is not None:  # a last resort that still says what is known
        where = priors.innermost_library_frame(root.frames)
        place = f" raised in {where[0]}, {where[1].func}()" if where else ""
        summary += f": {root.type}{place}: {root.message.splitlines()[0][:200] if root.message else ''}"
        evidence.append("no rule knows this exception and place; the category is left open")
    elif message:
        summary += f": {message.splitlines()[0][:200]}"
    elif cause == "no_rows":
        summary += ": it gave no rows (an empty file, or a path or pattern that matches no file)"
    return analyzer_pb2.FailureAnalysis(
        category=analyzer_pb2.FailureCategory.Value(f"FAILURE_CATEGORY_{category}"),
        phase=events_pb2.Phase.Value(f"PHASE_{phase}") if phase else events_pb2.PHASE_UNSPECIFIED,
        summary=summary, evidence=evidence[-6:], confidence=confidence,
        suggestions=suggestions.suggest(category, phase, config, on_gpu=request.hardware.gpu_count > 0,
                                        facts={"cause": cause, "max_positions": _max_positions(log),
                                               "columns": columns.from_message(message), "message": message,
                                               "resuming": resuming}),
        hardware=request.hardware if request.HasField("hardware") else None,
    )


def _resuming(log: logparse.ParsedLog, base_model: str) -> bool:
    """The run was reading a checkpoint back: the Trainer's resume functions are in the traceback, or
    the log names a checkpoint-N folder that is not the base model's own path."""
    if any(f.func in signs.RESUMING for r in log.chain for f in r.frames):
        return True
    return any(re.search(r"checkpoint-\d+", line.replace(base_model, "") if base_model else line) for line in log.lines)


def _max_positions(log: logparse.ParsedLog) -> int | None:
    """The model's position table size, as the trainer logs it when it loads the model."""
    for line in log.lines:
        m = re.search(r"^ftlab: loaded .*max positions (\d+)", line)
        if m:
            return int(m.group(1))
    return None


def _bad(m: events_pb2.TrainingMetrics) -> bool:
    import math

    return any(m.HasField(f) and not math.isfinite(getattr(m, f)) for f in ("loss", "grad_norm"))
