"""The training child: one run, in its own process, started by the trainer service.

    python -m services.trainer.child --spec RUN_DIR/spec.json --events-fd N

A thin TRL program: load the model (full, LoRA, QLoRA), normalize the dataset, train, save. It
reports over the inherited pipe `N` (see reporting.py); its stdout and stderr go to the run's log.
SIGUSR1 asks it to pause: save a checkpoint at the next optimizer step and exit cleanly.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

PAUSE = threading.Event()
signal.signal(signal.SIGUSR1, lambda *_: PAUSE.set())  # before the slow imports below: SIGUSR1 must never kill us

from services.common import chat_templates  # noqa: E402
from services.common.checkpoints import check_resumable  # noqa: E402
from services.trainer.process import EventSink, across_ranks, die_with_parent, prefer_oom_kill  # noqa: E402


def _load_split(uri: str, fmt: str | None, columns: dict[str, str]):
    import datasets

    from services.common.datasets import load_rows, mapped, normalize

    fmt, rows = normalize(mapped(load_rows(uri), columns), fmt)
    return fmt, datasets.Dataset.from_list(rows)


def _dataset_format(cfg: dict[str, Any]) -> str | None:
    name = cfg.get("dataset", {}).get("format", "DATASET_FORMAT_AUTO")
    if name in ("DATASET_FORMAT_AUTO", "DATASET_FORMAT_UNSPECIFIED"):
        return None
    return name.removeprefix("DATASET_FORMAT_").lower()


def train(spec: dict[str, Any], sink: EventSink) -> dict[str, Any]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, set_seed

    from services.common import settings
    from services.trainer import recipe, tuning
    from services.trainer.reporting import ReportingCallback
    from services.trainer.retention import RetentionCallback

    requested = spec["config"]
    if requested.get("report_to"):  # a tracker that is not installed fails here, before the model loads
        sink.set_phase("PHASE_STARTUP", "experiment trackers")
    os.environ.update(recipe.tracker_environment(
        requested, spec.get("run_dir") or os.path.join(spec["job_dir"], "runs", "unnamed")))
    machine = tuning.Machine.current()
    device = machine.device
    base = requested["base_model"]
    remote_code = settings.trust_remote_code()
    sink.set_phase("PHASE_MODEL_LOAD", "reading model config")
    model_type = getattr(AutoConfig.from_pretrained(base, trust_remote_code=remote_code), "model_type", "")
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
    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=remote_code)
    if len(tokenizer) <= 1:  # transformers builds an empty tokenizer for a folder without tokenizer files
        raise OSError(f"{base} does not appear to have a file named tokenizer.json or tokenizer_config.json: "
                      f"the tokenizer it gives has {len(tokenizer)} token(s)")
    if cfg.get("chat_template"):
        tokenizer.chat_template = chat_templates.resolve(cfg["chat_template"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    sink.set_phase("PHASE_MODEL_LOAD", "loading model")
    quant = recipe.quantization_config(cfg, precision)
    full = cfg.get("adapter") == "ADAPTER_FULL"
    resume = spec.get("resume_from") or None
    weights_only = bool(resume and spec.get("resume_weights_only"))
    if weights_only and full:
        print(f"ftlab: starting from the weights of {resume} (optimizer and schedule start afresh)", flush=True)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    model = AutoModelForCausalLM.from_pretrained(
        resume if weights_only and full else base,
        dtype=torch.float32 if full or precision == "fp32" else recipe.torch_dtype(precision),
        quantization_config=quant,
        device_map={"": local_rank} if quant is not None else None,
        attn_implementation=cfg["attn_implementation"],
        trust_remote_code=remote_code,
        use_safetensors=True,  # never unpickle weights
    )
    if quant is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=bool(cfg.get("gradient_checkpointing", False))
        )
    positions = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    print(f"ftlab: loaded {base} ({sum(p.numel() for p in model.parameters()):,} parameters, "
          f"max positions {positions})", flush=True)

    sink.set_phase("PHASE_DATA_PREP", "reading dataset")
    dataset_cfg = cfg["dataset"]
    mapping = dict(dataset_cfg.get("columns") or {})
    if mapping:
        print(f"ftlab: dataset columns mapped: {', '.join(f'{v} -> {k}' for k, v in mapping.items())}", flush=True)
    fmt, train_ds = _load_split(dataset_cfg["uri"], _dataset_format(cfg), mapping)
    eval_ds = None
    if dataset_cfg.get("eval_uri"):
        _, eval_ds = _load_split(dataset_cfg["eval_uri"], fmt, mapping)
    elif float(dataset_cfg.get("eval_split", 0.0)) > 0:
        split = train_ds.train_test_split(test_size=float(dataset_cfg["eval_split"]), seed=int(cfg.get("seed", 42)))
        train_ds, eval_ds = split["train"], split["test"]
    print(f"ftlab: dataset format={fmt} train_rows={len(train_ds)} eval_rows={len(eval_ds) if eval_ds else 0}", flush=True)

    method = cfg.get("method", "METHOD_SFT")
    if (method == "METHOD_DPO") != (fmt == "preference"):
        raise ValueError(
            f"dataset format {fmt!r} does not fit method {method}: DPO needs chosen/rejected pairs, "
            "SFT needs messages, conversations, instruction/output or prompt/completion"
        )
    sink.set_phase("PHASE_DATA_PREP", "tokenizing")
    callback = ReportingCallback(sink, 0, PAUSE, float(cfg.get("divergence_factor", 0.0)))
    output_dir = spec["checkpoints_dir"]
    retention = RetentionCallback(sink, int(cfg.get("save_total_limit", 0)), int(cfg.get("keep_best_checkpoints", 0)))
    common = dict(model=model, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tokenizer,
                  peft_config=recipe.peft_config(cfg), callbacks=[callback, retention])
    if method == "METHOD_DPO":
        from trl import DPOTrainer

        trainer = DPOTrainer(args=recipe.dpo_arguments(cfg, output_dir, device), **common)
    else:
        from trl import SFTTrainer

        trainer = SFTTrainer(args=recipe.sft_arguments(cfg, output_dir, device), **common)
        if trainer.args.max_length is None:  # padding-free: TRL leaves truncation to us
            limit = int(cfg["max_seq_length"])
            trainer.train_dataset = recipe.truncate(trainer.train_dataset, limit)
            trainer.eval_dataset = recipe.truncate(trainer.eval_dataset, limit)

    trainer.args.run_name = spec.get("job_id") or trainer.args.run_name  # the trackers' name for this run
    if cfg.get("auto_micro_batch") == "SWITCH_ON":
        _search_micro_batch(trainer, cfg, decisions, machine)
    callback.samples_per_step = trainer.args.per_device_train_batch_size * trainer.args.gradient_accumulation_steps \
        * machine.world_size
    _report_settings(sink, decisions)

    if weights_only:
        if not full:
            _load_adapter_weights(trainer.model, Path(resume))
        resume = None
    if resume:
        sink.set_phase("PHASE_STARTUP", f"resuming from {Path(resume).name}")
        check_resumable(Path(resume))
    result = trainer.train(resume_from_checkpoint=resume)
    if callback.paused_checkpoint:
        return {"outcome": "RUN_OUTCOME_PAUSED", "resume_checkpoint": callback.paused_checkpoint}
    sink.set_phase("PHASE_CHECKPOINT_SAVE", "saving final model")
    final_name = "model" if full else "adapter"
    trainer.save_model(str(Path(spec["job_dir"]) / final_name))
    return {"outcome": "RUN_OUTCOME_SUCCEEDED", "output": final_name, "train_loss": float(result.training_loss)}


_DECIDED = ("precision", "optimizer", "attn_implementation", "padding_free", "liger_kernel", "torch_compile",
            "dataloader_num_workers", "auto_micro_batch", "per_device_train_batch_size", "gradient_accumulation_steps")


def _report_settings(sink: EventSink, decisions) -> None:
    """The settings event: the decided fields (the rest is the job's config) and why each was chosen."""
    effective = {k: decisions.config[k] for k in _DECIDED if k in decisions.config}
    for choice in decisions.choices:
        print(f"ftlab: {choice.field} = {choice.value}: {choice.reason}", flush=True)
    sink.emit(settings={"effective": effective, "choices": [c.as_dict() for c in decisions.choices]})


def _search_micro_batch(trainer, cfg: dict[str, Any], decisions, machine) -> None:
    """The largest micro-batch that fits this GPU with the heaviest examples of the data, keeping the
    effective batch; applied to the built trainer."""
    from services.trainer import tuning

    micro, accumulation = int(cfg["per_device_train_batch_size"]), int(cfg["gradient_accumulation_steps"])
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    padding_free = bool(cfg.get("padding_free"))
    probe = _memory_probe(trainer, lengths, padding_free, machine.gpu_memory_bytes)
    cap = tuning.token_cap(cfg)

    def fits(b: int) -> bool:
        return (cap is None or tuning.worst_case_tokens(lengths, b, padding_free) <= cap) and probe(b)

    b, _, tried = tuning.largest_micro_batch(micro, accumulation, fits)
    b = across_ranks(b, "min", next(trainer.model.parameters()).device)  # every rank must accumulate alike,
    # or DDP waits forever
    g = micro * accumulation // b
    if b != micro:
        tuning.apply_micro_batch(trainer, b, g)
        why = (f"largest micro-batch that fits {machine.gpu_memory_bytes / 2**30:.0f} GiB with the {b} longest examples "
               f"(tried {', '.join(map(str, tried))}); effective batch {micro * accumulation} kept")
    else:
        why = f"no larger micro-batch fits (tried {', '.join(map(str, tried)) or 'none'}); as requested"
    if cap is not None:
        why += f"; at most {cap} tokens per padding-free micro-batch with {cfg['attn_implementation']} attention"
    decisions.choose("per_device_train_batch_size", b, why)
    decisions.choose("gradient_accumulation_steps", g, f"{micro * accumulation} / {b}")


def _memory_probe(trainer, lengths: list[int], padding_free: bool, total_bytes: int, headroom: float = 0.9):
    """fits(b): one forward and backward of the `b` longest examples, with the optimizer's state held
    aside, peaks under `headroom` of the GPU."""
    import torch

    from services.trainer import tuning

    model = trainer.model
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    optimizer_state = 2 * trainable  # AdamW's two moments, in the parameters' dtype
    device = next(p.device for p in model.parameters())
    dtype = torch.bfloat16 if trainer.args.bf16 else torch.float16 if trainer.args.fp16 else None

    def fits(b: int) -> bool:
        tokens = tuning.worst_case_tokens(lengths, b, padding_free)
        top = sorted(lengths, reverse=True)[:b]
        held = None
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        try:
            held = torch.empty(optimizer_state, dtype=torch.uint8, device=device)
            if padding_free:
                ids = torch.randint(0, 1000, (1, tokens), device=device)
                pos = torch.cat([torch.arange(n, device=device) for n in top]).unsqueeze(0)
                batch = {"input_ids": ids, "position_ids": pos, "labels": ids}
            else:
                ids = torch.randint(0, 1000, (len(top), top[0]), device=device)
                batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
            with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
                loss = model(**batch).loss
            loss.backward()
            return torch.cuda.max_memory_allocated() <= headroom * total_bytes
        except torch.OutOfMemoryError:
            return False
        finally:
            del held
            model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()

    return fits


def _load_adapter_weights(model, checkpoint: Path) -> None:
    """A checkpoint's LoRA weights into the fresh adapter (the same rank and targets; LoRA <-> QLoRA)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = checkpoint / "adapter_model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"checkpoint {checkpoint.name} has no adapter weights ({weights.name})")
    result = set_peft_model_state_dict(model, load_file(str(weights)))
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"checkpoint {checkpoint.name} does not fit this adapter: {result.unexpected_keys[:3]}")
    print(f"ftlab: starting from the adapter weights of {checkpoint.name} (optimizer and schedule start afresh)",
          flush=True)


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


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    prefer_oom_kill()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--events-fd", type=int, default=None)
    args = parser.parse_args(argv)
    sink = EventSink(_events_fd(args.events_fd))
    try:
        spec = json.loads(Path(args.spec).read_text())
        result = train(spec, sink)
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
    sink.emit(result=result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
