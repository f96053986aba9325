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

from services.trainer.reporting import EventSink  # noqa: E402


def _load_split(uri: str, fmt: str | None):
    import datasets

    from services.common.datasets import load_rows, normalize

    fmt, rows = normalize(load_rows(uri), fmt)
    return fmt, datasets.Dataset.from_list(rows)


def _dataset_format(cfg: dict[str, Any]) -> str | None:
    name = cfg.get("dataset", {}).get("format", "DATASET_FORMAT_AUTO")
    if name in ("DATASET_FORMAT_AUTO", "DATASET_FORMAT_UNSPECIFIED"):
        return None
    return name.removeprefix("DATASET_FORMAT_").lower()


def train(spec: dict[str, Any], sink: EventSink) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    from services.common import settings
    from services.trainer import recipe
    from services.trainer.reporting import ReportingCallback
    from services.trainer.retention import RetentionCallback

    cfg = spec["config"]
    device = recipe.device_kind()
    precision = recipe.resolve_precision(cfg.get("precision", "PRECISION_AUTO"), device)
    set_seed(int(cfg.get("seed", 42)))
    print(f"ftlab: device={device} precision={precision} torch={torch.__version__}", flush=True)

    sink.set_phase("PHASE_MODEL_LOAD", "loading tokenizer")
    base = cfg["base_model"]
    remote_code = settings.trust_remote_code()
    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=remote_code)
    if cfg.get("chat_template"):
        tokenizer.chat_template = cfg["chat_template"]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    sink.set_phase("PHASE_MODEL_LOAD", "loading model")
    quant = recipe.quantization_config(cfg, precision)
    full = cfg.get("adapter") == "ADAPTER_FULL"
    resume = spec.get("resume_from") or None
    weights_only = bool(resume and spec.get("resume_weights_only"))
    if weights_only and full:
        print(f"ftlab: starting from the weights of {resume} (optimizer and schedule start afresh)", flush=True)
    model = AutoModelForCausalLM.from_pretrained(
        resume if weights_only and full else base,
        dtype=torch.float32 if full or precision == "fp32" else recipe.torch_dtype(precision),
        quantization_config=quant,
        device_map={"": 0} if quant is not None else None,
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
    fmt, train_ds = _load_split(dataset_cfg["uri"], _dataset_format(cfg))
    eval_ds = None
    if dataset_cfg.get("eval_uri"):
        _, eval_ds = _load_split(dataset_cfg["eval_uri"], fmt)
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
    samples_per_step = int(cfg["per_device_train_batch_size"]) * int(cfg["gradient_accumulation_steps"])
    callback = ReportingCallback(sink, samples_per_step, PAUSE, float(cfg.get("divergence_factor", 0.0)))
    output_dir = spec["checkpoints_dir"]
    retention = RetentionCallback(sink, int(cfg.get("save_total_limit", 0)), int(cfg.get("keep_best_checkpoints", 0)))
    common = dict(model=model, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tokenizer,
                  peft_config=recipe.peft_config(cfg), callbacks=[callback, retention])
    if method == "METHOD_DPO":
        from trl import DPOTrainer

        trainer = DPOTrainer(args=recipe.dpo_arguments(cfg, output_dir, precision, device), **common)
    else:
        from trl import SFTTrainer

        trainer = SFTTrainer(args=recipe.sft_arguments(cfg, output_dir, precision, device), **common)

    if weights_only:
        if not full:
            _load_adapter_weights(trainer.model, Path(resume))
        resume = None
    if resume:
        sink.set_phase("PHASE_STARTUP", f"resuming from {Path(resume).name}")
    result = trainer.train(resume_from_checkpoint=resume)
    if callback.paused_checkpoint:
        return {"outcome": "RUN_OUTCOME_PAUSED", "resume_checkpoint": callback.paused_checkpoint}
    sink.set_phase("PHASE_CHECKPOINT_SAVE", "saving final model")
    final_name = "model" if full else "adapter"
    trainer.save_model(str(Path(spec["job_dir"]) / final_name))
    return {"outcome": "RUN_OUTCOME_SUCCEEDED", "output": final_name, "train_loss": float(result.training_loss)}


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


def _die_with_parent() -> None:
    """Linux: be killed when the trainer service dies, so a lost trainer leaves no run behind that
    could train alongside its requeued successor."""
    expected = os.environ.get("FTLAB_PARENT_PID")
    if not expected or not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(expected):  # the parent died before prctl took effect
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    _die_with_parent()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--events-fd", type=int, default=None)
    args = parser.parse_args(argv)
    sink = EventSink(args.events_fd)
    try:
        spec = json.loads(Path(args.spec).read_text())
        result = train(spec, sink)
    except BaseException as exc:  # report everything, including KeyboardInterrupt and SystemExit
        tb = traceback.format_exc()
        print(tb, file=sys.stderr, flush=True)
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
