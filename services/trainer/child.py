"""The training child: one run, in its own process, started by the trainer service.

    python -m services.trainer.child --spec RUN_DIR/spec.json --events-fd N

A thin TRL program: load the model (full, LoRA, QLoRA), normalize the dataset, train, save. It
reports over the inherited pipe `N` (see reporting.py); its stdout and stderr go to the run's log.
SIGUSR1 asks it to pause: save a checkpoint at the next optimizer step and exit cleanly.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the libraries are imported where they are used: the zygote imports this module early
    from transformers import Trainer

    from services.trainer.tuning import Decisions

PAUSE = threading.Event()
signal.signal(signal.SIGUSR1, lambda *_: PAUSE.set())  # before the slow imports below: SIGUSR1 must never kill us

from services.common.checkpoints import check_resumable  # noqa: E402
from services.trainer.process import EventSink, die_with_parent, prefer_oom_kill  # noqa: E402
from services.trainer.runspec import RunSpec  # noqa: E402


def train(spec: RunSpec, sink: EventSink) -> dict[str, Any]:
    import torch
    from transformers import set_seed

    from services.common import prompts, settings
    from services.trainer import loading, micro_batch, recipe, sampling, stopping, tuning
    from services.trainer.reporting import ReportingCallback
    from services.trainer.retention import RetentionCallback

    requested = spec.config
    if requested.get("report_to"):  # a tracker that is not installed fails here, before the model loads
        sink.set_phase("PHASE_STARTUP", "experiment trackers")
    os.environ.update(recipe.tracker_environment(requested, spec.log_dir))
    machine = tuning.Machine.current()
    device = machine.device
    base = requested["base_model"]
    remote_code = settings.trust_remote_code()
    sink.set_phase("PHASE_MODEL_LOAD", "reading model config")
    model_type = loading.model_config_type(base, remote_code)
    decisions = tuning.decide(requested, machine, model_type)
    cfg = decisions.config
    if cfg.get("auto_micro_batch") == "SWITCH_ON" and device != "cuda":
        raise ValueError("auto_micro_batch is ON but this trainer has no GPU: set it to AUTO or OFF")
    precision = recipe.precision_of(cfg)
    set_seed(int(cfg.get("seed", 42)))
    threads = int(os.environ.get("FTLAB_CPU_THREADS", "0"))
    if threads > 0:  # the trainer's share of the cores for this process: runs side by side must not oversubscribe
        torch.set_num_threads(threads)
    print(f"ftlab: device={device} precision={precision} torch={torch.__version__} processes={machine.world_size} "
          f"cpu_threads={torch.get_num_threads()}", flush=True)

    sink.set_phase("PHASE_MODEL_LOAD", "loading tokenizer")
    tokenizer = loading.tokenizer(base, cfg, remote_code)
    sink.set_phase("PHASE_MODEL_LOAD", "loading model")
    full = cfg.get("adapter") == "ADAPTER_FULL"
    resume = spec.resume_from or None
    weights_from = resume if spec.resume_weights_only else None  # a checkpoint whose weights alone start the run
    if weights_from and full:
        print(f"ftlab: starting from the weights of {weights_from} (optimizer and schedule start afresh)", flush=True)
    model = loading.model(weights_from if weights_from and full else base, cfg, precision, remote_code,
                          int(os.environ.get("LOCAL_RANK", "0")))
    positions = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    print(f"ftlab: loaded {base} ({sum(p.numel() for p in model.parameters()):,} parameters, "
          f"max positions {positions})", flush=True)

    sink.set_phase("PHASE_DATA_PREP", "reading dataset")
    fmt, train_ds, eval_ds = loading.datasets(cfg)
    print(f"ftlab: dataset format={fmt} train_rows={len(train_ds)} eval_rows={len(eval_ds) if eval_ds else 0}", flush=True)
    method = cfg.get("method", "METHOD_SFT")
    if (method == "METHOD_DPO") != (fmt == "preference"):
        raise ValueError(
            f"dataset format {fmt!r} does not fit method {method}: DPO needs chosen/rejected pairs, "
            "SFT needs messages, conversations, instruction/output or prompt/completion"
        )
    sink.set_phase("PHASE_DATA_PREP", "tokenizing")
    if fmt != "preference":
        loading.check_template_renders(tokenizer, train_ds)
    callback = ReportingCallback(sink, 0, PAUSE, float(cfg.get("divergence_factor", 0.0)))
    patience = int(cfg.get("early_stopping_patience", 0))
    early = stopping.EarlyStopping(patience, float(cfg.get("early_stopping_threshold", 0.0))) if patience else None
    # early stopping ends with the best checkpoint's weights: retention keeps it
    retention = RetentionCallback(sink, int(cfg.get("save_total_limit", 0)),
                                  max(int(cfg.get("keep_best_checkpoints", 0)), 1 if early else 0))
    samples = dict(cfg.get("samples") or {})
    sampler = sampling.SamplingCallback(sink, tokenizer, prompts.load_prompts(samples),
                                        int(samples.get("max_new_tokens", 64)), float(samples.get("temperature", 0.0)),
                                        int(samples.get("seed", 42)))
    # in this order: a new best is saved, the answers come while the phase is still evaluation, then
    # the reporting callback says what comes next
    ahead = [c for c in (early, sampler) if c is not None]
    trainer = _trainer(cfg, method, device, spec.checkpoints_dir, model=model, train_dataset=train_ds,
                       eval_dataset=eval_ds, processing_class=tokenizer, peft_config=recipe.peft_config(cfg),
                       callbacks=[*ahead, callback, retention])
    trainer.args.run_name = spec.job_id or trainer.args.run_name  # the trackers' name for this run
    if cfg.get("auto_micro_batch") == "SWITCH_ON":
        micro_batch.search(trainer, cfg, decisions, machine)
    callback.samples_per_step = trainer.args.per_device_train_batch_size * trainer.args.gradient_accumulation_steps \
        * machine.world_size
    _report_settings(sink, decisions)

    if weights_from:
        if not full:
            loading.adapter_weights(trainer.model, Path(weights_from))
            print(f"ftlab: starting from the adapter weights of {Path(weights_from).name} (optimizer and schedule "
                  "start afresh)", flush=True)
        resume = None
    if resume:
        sink.set_phase("PHASE_STARTUP", f"resuming from {Path(resume).name}")
        check_resumable(Path(resume))
    result = trainer.train(resume_from_checkpoint=resume)
    if callback.paused_checkpoint:
        return {"outcome": "RUN_OUTCOME_PAUSED", "resume_checkpoint": callback.paused_checkpoint}
    stop_reason = early.reason() if early is not None else ""
    if stop_reason:
        print(f"ftlab: {stop_reason}", flush=True)
        stopping.restore_best(trainer, spec.checkpoints_dir, early.best_step if early else 0, full)
    if sampler.chats and trainer.is_world_process_zero():
        sink.set_phase("PHASE_EVALUATION", "answering the sample prompts")
        sampler.report(trainer.model, trainer.state.global_step, final=True)
    sink.set_phase("PHASE_CHECKPOINT_SAVE", "saving final model")
    final_name = "model" if full else "adapter"
    trainer.save_model(str(Path(spec.job_dir) / final_name))
    return {"outcome": "RUN_OUTCOME_SUCCEEDED", "output": final_name, "train_loss": float(result.training_loss),
            **({"stop_reason": stop_reason} if stop_reason else {})}


def _trainer(cfg: dict[str, Any], method: str, device: str, output_dir: str, **common: Any) -> Trainer:
    """TRL's DPOTrainer or SFTTrainer, built on the job's arguments."""
    from services.trainer import recipe

    if method == "METHOD_DPO":
        from trl import DPOTrainer

        return DPOTrainer(args=recipe.dpo_arguments(cfg, output_dir, device), **common)
    from trl import SFTTrainer

    trainer = SFTTrainer(args=recipe.sft_arguments(cfg, output_dir, device), **common)
    if trainer.args.max_length is None:  # padding-free: TRL leaves truncation to us
        limit = int(cfg["max_seq_length"])
        trainer.train_dataset = recipe.truncate(trainer.train_dataset, limit)
        trainer.eval_dataset = recipe.truncate(trainer.eval_dataset, limit, "eval")
    return trainer


_DECIDED = ("precision", "optimizer", "attn_implementation", "padding_free", "liger_kernel", "torch_compile",
            "dataloader_num_workers", "auto_micro_batch", "per_device_train_batch_size", "gradient_accumulation_steps")


def _report_settings(sink: EventSink, decisions: Decisions) -> None:
    """The settings event: the decided fields (the rest is the job's config) and why each was chosen."""
    effective = {k: decisions.config[k] for k in _DECIDED if k in decisions.config}
    for choice in decisions.choices:
        print(f"ftlab: {choice.field} = {choice.value}: {choice.reason}", flush=True)
    sink.emit(settings={"effective": effective, "choices": [c.as_dict() for c in decisions.choices]})


def _leave_process_group() -> None:
    """Under torchrun: wait for every rank to finish, then close the process group, so that no rank
    exits while another still talks to it (gloo aborts a process that exits mid-conversation)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _events_fd(inherited: int | None) -> int | None:
    """The pipe to report on. Alone: the inherited descriptor. Under torchrun (services.trainer.launch),
    only rank 0 reports, and reopens the launcher's descriptor, since torchrun closes it in its workers."""
    if int(os.environ.get("RANK", "0")) != 0:
        return None
    path = os.environ.get("FTLAB_EVENTS_PATH")
    if path:
        return os.open(path, os.O_WRONLY)
    return inherited


def main(argv: list[str] | None = None,
         program: Callable[[RunSpec, EventSink], dict[str, Any]] | None = None) -> int:
    """Run `program` (training; the evaluation child gives its own) on the spec, reporting its result
    or, whatever it raised, its error."""
    die_with_parent()
    prefer_oom_kill()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--events-fd", type=int, default=None)
    args = parser.parse_args(argv)
    sink = EventSink(_events_fd(args.events_fd))
    try:
        result = (program or train)(RunSpec.read(args.spec), sink)
        _leave_process_group()
    except BaseException as exc:  # report everything, including KeyboardInterrupt and SystemExit
        tb = traceback.format_exc()
        try:  # into the log first, where the trainer reads its tail when the error arrives
            print(tb, file=sys.stderr, flush=True)
        except OSError:  # the log's disk is full: the error still goes out on the pipe
            pass
        kind = type(exc)
        sink.emit(error={
            "type": f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins."),
            "message": str(exc)[:4000],
            "traceback": "\n".join(tb.splitlines()[-60:]),
            "phase": sink.phase,
        })
        return 1
    sink.result(**result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
