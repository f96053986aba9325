"""The TrainerCallback that feeds the event pipe (process.EventSink). The callback only observes; it
steers training through `control` (pause = save now, then stop)."""

from __future__ import annotations

import math
import statistics
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from services.trainer.process import EventSink, across_ranks

if TYPE_CHECKING:
    from torch.utils.data import DataLoader
    from transformers import TrainerControl, TrainerState, TrainingArguments

EVAL_PROGRESS_SECONDS = 1.0


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class DivergenceError(RuntimeError):
    """The loss or gradient norm became NaN/inf, exploded over its running median, or climbed far above
    its best and where it began."""


class DivergenceGuard:
    """Checks each logged loss and grad norm; `check` raises DivergenceError at the first bad step."""

    WARMUP_REPORTS = 1  # reports before the explosion check starts

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.losses: list[float] = []

    def check(self, step: int, loss: float | None, grad_norm: float | None) -> None:
        for name, value in (("loss", loss), ("grad_norm", grad_norm)):
            if value is not None and not math.isfinite(value):
                raise DivergenceError(f"{name} became {value} at step {step}: training diverged")
        if loss is None:
            return
        if self.factor > 0 and len(self.losses) >= self.WARMUP_REPORTS:
            median = statistics.median(self.losses[-100:])
            if median > 0 and loss > self.factor * median:
                raise DivergenceError(f"loss {loss:.4g} at step {step} is over {self.factor:g}x its running median "
                                      f"{median:.4g}: training diverged")
            # a steady climb raises its median with it: the best loss and the first one still show it
            best, first = min(self.losses), self.losses[0]
            if best > 0 and loss > self.factor * best and loss > 2 * first:
                raise DivergenceError(f"loss {loss:.4g} at step {step} is over {self.factor:g}x its best {best:.4g} "
                                      f"and twice where it began ({first:.4g}): training diverged")
        self.losses.append(loss)

    ENDED_WORSE_MIN_REPORTS = 10  # fewer logged losses say too little about how a run ended
    ENDED_WORSE_RATIO = 1.25

    def finish(self, step: int) -> None:
        """At the end of a run that was not paused: a loss that ended clearly worse than it began means
        the run unlearned; it fails as diverged instead of succeeding on garbage. Where it began is the
        first logged loss (the first step's loss is the model's before any update); where it ended is
        the mean of the last tenth of the logged losses (at least 3), over 1.25x that."""
        n = len(self.losses)
        if self.factor <= 0 or n < self.ENDED_WORSE_MIN_REPORTS:
            return
        k = max(3, n // 10)
        began, ended = self.losses[0], statistics.fmean(self.losses[-k:])
        if began > 0 and ended > self.ENDED_WORSE_RATIO * began:
            raise DivergenceError(f"the loss ended worse than it began: its last {k} logged values average "
                                  f"{ended:.4g}, {ended / began:.2g}x its first ({began:.4g}), at step {step}: "
                                  "training diverged")


class ReportingCallback(TrainerCallback):  # type: ignore[misc]  # transformers is read as Any
    """Reports phases, metrics, evaluations and checkpoints; pauses on request."""

    def __init__(self, sink: EventSink, samples_per_step: int, pause_requested: threading.Event,
                 divergence_factor: float = 0.0) -> None:
        self.guard = DivergenceGuard(divergence_factor)
        self.sink = sink
        self.samples_per_step = samples_per_step
        self.pause_requested = pause_requested
        self.paused_checkpoint = ""
        self._start = 0.0
        self._last_time = 0.0
        self._last_step = 0
        self._last_tokens = 0
        self._first_step = 0
        self._reported_steps: set[int] = set()
        self._save_started: float | None = None
        self._eval_batches = 0
        self._eval_reported = 0.0

    # training loop
    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        self._start = self._last_time = time.monotonic()
        self._last_step = self._first_step = state.global_step
        self._last_tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)
        self.sink.set_phase("PHASE_TRAINING")

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        # under torchrun every rank gets the pause signal, maybe at different steps; all stop at one
        if across_ranks(int(self.pause_requested.is_set()), "max", args.device):
            control.should_save = True
            control.should_training_stop = True
            self.paused_checkpoint = f"checkpoint-{state.global_step}"
        if control.should_evaluate:
            self.sink.set_phase("PHASE_EVALUATION")
        elif control.should_save:
            self.sink.set_phase("PHASE_CHECKPOINT_SAVE")
            self._save_started = time.monotonic()

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        if "loss" not in logs or state.global_step in self._reported_steps:
            return
        self._reported_steps.add(state.global_step)
        now = time.monotonic()
        tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)
        dt = max(now - self._last_time, 1e-9)
        steps = state.global_step - self._last_step
        metrics: dict[str, Any] = {
            "step": state.global_step,
            "max_steps": state.max_steps,
            "epoch": float(state.epoch or 0.0),
            "loss": float(logs["loss"]),
            "tokens_per_second": (tokens - self._last_tokens) / dt,
            "samples_per_second": steps * self.samples_per_step / dt,
            "elapsed_seconds": now - self._start,
            "tokens_seen": tokens,
        }
        for key, name in (("learning_rate", "learning_rate"), ("grad_norm", "grad_norm"),
                          ("mean_token_accuracy", "mean_token_accuracy"), ("entropy", "entropy")):
            if logs.get(key) is not None:
                metrics[name] = float(logs[key])
        rewards = {name: float(logs[f"rewards/{name}"]) for name in ("chosen", "rejected", "margins", "accuracies")
                   if logs.get(f"rewards/{name}") is not None}
        if rewards:  # DPO's implicit rewards, as TRL names them
            metrics["rewards"] = rewards
        done = state.global_step - self._first_step
        if done > 0 and state.max_steps:
            metrics["eta_seconds"] = (now - self._start) / done * (state.max_steps - state.global_step)
        metrics.update(_gpu_memory())
        self._last_time, self._last_step, self._last_tokens = now, state.global_step, tokens
        self.sink.emit(metrics=metrics)
        self.guard.check(state.global_step, metrics["loss"], metrics.get("grad_norm"))

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        if not self.paused_checkpoint:
            self.guard.finish(state.global_step)

    def on_prediction_step(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                           eval_dataloader: DataLoader[Any] | None = None, **kwargs: Any) -> None:
        """Evaluation progress, at most once a second: a long evaluation is not a stuck one."""
        self._eval_batches += 1
        try:
            total = len(eval_dataloader) if eval_dataloader is not None else 0
        except TypeError:  # an iterable dataset: no length
            total = 0
        now = time.monotonic()
        if 1 < self._eval_batches != total and now - self._eval_reported < EVAL_PROGRESS_SECONDS:
            return
        self._eval_reported = now
        self.sink.emit(eval_progress={"step": state.global_step, "batches_done": self._eval_batches,
                                      "batches_total": total})

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    metrics: dict[str, float] | None = None, **kwargs: Any) -> None:
        self._eval_batches = 0
        metrics = metrics or {}
        if "eval_loss" in metrics:
            self.sink.emit(eval={
                "step": state.global_step,
                "eval_loss": float(metrics["eval_loss"]),
                "runtime_seconds": float(metrics.get("eval_runtime", 0.0)),
            })
        self.sink.set_phase("PHASE_CHECKPOINT_SAVE" if control.should_save else "PHASE_TRAINING")
        self._save_started = time.monotonic()

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        name = f"checkpoint-{state.global_step}"
        path = Path(args.output_dir) / name
        event: dict[str, Any] = {"name": name, "step": state.global_step,
                                 "size_bytes": _dir_size(path) if path.exists() else 0}
        evals = [h["eval_loss"] for h in state.log_history if h.get("step") == state.global_step and "eval_loss" in h]
        if evals:
            event["eval_loss"] = float(evals[-1])
        if self._save_started is not None:
            event["save_seconds"] = time.monotonic() - self._save_started
            self._save_started = None
        self.sink.emit(checkpoint_saved=event)
        self.sink.set_phase("PHASE_TRAINING")



def _gpu_memory() -> dict[str, int]:
    import torch

    if not torch.cuda.is_available():
        return {}
    return {
        "gpu_memory_allocated_bytes": torch.cuda.memory_allocated(),
        "gpu_memory_reserved_bytes": torch.cuda.memory_reserved(),
        "gpu_memory_peak_bytes": torch.cuda.max_memory_allocated(),
        "gpu_memory_peak_reserved_bytes": torch.cuda.max_memory_reserved(),
    }
