"""Early stopping: stop training after `patience` evaluations in a row whose loss did not beat the best
by `threshold`, with a checkpoint saved at every new best, so that the best weights can become the
final model. Transformers' own EarlyStoppingCallback needs load_best_model_at_end and a save at
every evaluation; this one saves only the new bests and leaves the rest of the checkpoints as the job
asked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

if TYPE_CHECKING:
    from transformers import Trainer, TrainerControl, TrainerState, TrainingArguments


class EarlyStopping(TrainerCallback):  # type: ignore[misc]  # transformers is read as untyped
    def __init__(self, patience: int, threshold: float) -> None:
        self.patience, self.threshold = patience, threshold
        self.best: float | None = None
        self.best_step = 0
        self.waited = 0
        self.stopped_at = 0  # the step where it stopped training (0: it did not)

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    metrics: dict[str, float] | None = None, **kwargs: Any) -> None:
        loss = (metrics or {}).get("eval_loss")
        if loss is None:
            return
        if self.best is None or loss < self.best - self.threshold:
            self.best, self.best_step, self.waited = loss, state.global_step, 0
            control.should_save = True  # the best weights are a checkpoint, to end with
            return
        self.waited += 1
        if self.waited >= self.patience:
            control.should_training_stop = True
            self.stopped_at = state.global_step

    def reason(self) -> str:
        if not self.stopped_at:
            return ""
        return (f"stopped early at step {self.stopped_at}: the evaluation loss did not improve on {self.best:.4g} "
                f"(step {self.best_step}) by more than {self.threshold:g} for {self.patience} evaluation(s); the "
                f"final model is the weights of step {self.best_step}")


def restore_best(trainer: Trainer, checkpoints_dir: str, step: int, full: bool) -> None:
    """Put the weights of checkpoint-`step` back into the trainer's model (an adapter's, or a whole
    model's), so that the final model is the best one."""
    folder = Path(checkpoints_dir) / f"checkpoint-{step}"
    if full:
        from transformers.trainer_utils import load_sharded_checkpoint

        if (folder / "model.safetensors").exists():
            from safetensors.torch import load_file

            result = trainer.model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=False)
            if result.unexpected_keys:
                raise ValueError(f"checkpoint-{step} does not fit the model: {result.unexpected_keys[:3]}")
        else:
            load_sharded_checkpoint(trainer.model, str(folder), strict=False)
    else:
        from services.trainer import loading

        loading.adapter_weights(trainer.model, folder)
    print(f"ftlab: the final model is the best evaluation's weights, checkpoint-{step}", flush=True)
