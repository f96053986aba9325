"""Which phase a failure happened in, from the traceback's frames (innermost decisive frame wins)
or, with no traceback, from the last lines of the log."""

from __future__ import annotations

from services.analyzer.logparse import ParsedLog

# (phase, function names that place a frame in it), checked from the innermost frame outwards
_BY_FUNC: list[tuple[str, frozenset[str]]] = [
    ("CHECKPOINT_SAVE", frozenset({"_save_checkpoint", "save_model", "_save", "save_pretrained", "save_to_json",
                                   "_save_optimizer_and_scheduler", "save_file", "_save_rng_state"})),
    ("EVALUATION", frozenset({"evaluate", "evaluation_loop", "prediction_step", "_evaluate",
                              "_determine_best_metric"})),
    # inside train() but before the first step: the optimizer, the schedule and the step counts are set up
    ("STARTUP", frozenset({"_load_from_checkpoint", "_validate_args", "validate_quantization_for_training",
                           "_load_optimizer_and_scheduler", "_load_rng_state", "_load_scaler",
                           "_load_callback_state", "load_from_json", "create_optimizer",
                           "create_scheduler", "create_optimizer_and_scheduler", "set_initial_training_values",
                           "_init_training_state", "apply_liger_kernel", "check_resumable",
                           "create_accelerator_and_postprocess"})),
    # compute_loss and the forward pass run in training and in evaluation alike: they decide nothing
    ("TRAINING", frozenset({"training_step", "_inner_training_loop", "backward", "optimizer_step",
                            "_maybe_log_save_evaluate", "_run_epoch"})),
    ("DATA_PREP", frozenset({"_prepare_dataset", "tokenize_fn", "_tokenize", "apply_chat_template", "map",
                             "load_dataset", "load_rows", "normalize", "detect_format", "_load_split", "from_patterns",
                             "resolve_pattern", "get_training_chat_template", "apply_function",
                             "get_train_dataloader", "get_eval_dataloader", "_get_train_sampler"})),
    ("MODEL_LOAD", frozenset({"from_pretrained", "get_peft_model", "inject_adapter", "load_adapter",
                              "prepare_model_for_kbit_training", "cached_files", "cached_file",
                              "create_model_from_path", "_flash_attn_import_error", "load_peft_weights",
                              "get_correct_attn_implementation"})),
]


_FUNCS = dict(_BY_FUNC)
# the Trainer building its own parts, after the trainer has announced data preparation
_BUILDING_TRAINER = frozenset({"create_accelerator_and_postprocess"})


def infer_phase(log: ParsedLog) -> str:
    """A Phase name without its prefix, or "" when nothing tells."""
    if log.frames and log.frames[-1].func == "train" and log.frames[-1].file.endswith("transformers/trainer.py"):
        return "STARTUP"  # raised by Trainer.train itself, before its loop: the resume and the arguments
    for frame in reversed(log.frames):
        if frame.func == "__init__" and frame.file.endswith(("torch/utils/data/dataloader.py",
                                                             "torch/utils/data/sampler.py")) \
                and "num_samples" not in log.message:  # no samples at all: the data, not a setting
            return "STARTUP"  # a loader or sampler refusing its arguments (batch size, workers): a setting
        for phase, funcs in _BY_FUNC:
            if frame.func in funcs:
                return phase
    if len(log.frames) > 1 and log.frames[-1].func == "<module>":
        return "STARTUP"  # raised while a module was imported: before anything of the run began
    if log.frames:
        called = log.frame_funcs()
        if "train" in called:
            return "TRAINING"
        if "__init__" in called:
            return "STARTUP"
    if log.has_line(r"^ftlab watchdog: .* in (training|evaluation|checkpoint|model load|data prep|startup)"):
        last = next(ln for ln in reversed(log.lines) if ln.startswith("ftlab watchdog:"))
        for phase in ("CHECKPOINT_SAVE", "EVALUATION", "TRAINING", "MODEL_LOAD", "DATA_PREP", "STARTUP"):
            if f" in {phase.lower().replace('_', ' ')}" in last or (phase == "CHECKPOINT_SAVE" and " in checkpoint" in last):
                return phase
    text = "\n".join(log.lines[-40:]).lower()
    if log.metrics or "starting training" in text or "it/s]" in text:
        return "TRAINING"
    return ""


def refine(reported: str, log: ParsedLog) -> str:
    """The phase the trainer reported, corrected where its phases are coarser than the work: it
    announces STARTUP before it reads the model's config, and DATA_PREP before TRL's trainer is
    built, which also wraps the model in its adapter. Frames that load or wrap the model, with no
    resume or argument check among them, say MODEL_LOAD; frames that build the trainer's own parts
    (its accelerator), with no data preparation among them, say STARTUP."""
    inferred = infer_phase(log) if reported in ("STARTUP", "DATA_PREP") else ""
    if inferred == "MODEL_LOAD" and not any(f.func in _FUNCS["STARTUP"] for f in log.frames):
        return "MODEL_LOAD"
    if reported == "DATA_PREP" and any(f.func in _BUILDING_TRAINER for f in log.frames) \
            and not any(f.func in _FUNCS["DATA_PREP"] for f in log.frames):
        return "STARTUP"
    return reported
