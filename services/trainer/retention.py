"""Checkpoint retention, applied as the run saves: keep the latest checkpoint, the `recent` most
recent ones and the `best` ones with the lowest evaluation loss; delete the rest and report each
deletion, so the scheduler's list of checkpoints stays true. Replaces Transformers' own rotation
(`save_total_limit`), which deletes silently and knows no "best k"."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from services.common.checkpoints import eval_loss, is_own, step_of
from services.trainer.process import EventSink

if TYPE_CHECKING:
    from transformers import TrainerControl, TrainerState, TrainingArguments


@dataclass(frozen=True)
class Saved:
    name: str
    step: int
    eval_loss: float | None


def to_delete(saved: list[Saved], recent: int, best: int) -> dict[str, str]:
    """Checkpoints to delete, with why. recent = 0 and best = 0 keep everything."""
    if not recent and not best:
        return {}
    by_step = sorted(saved, key=lambda c: c.step)
    keep = {by_step[-1].name} if by_step else set()
    keep |= {c.name for c in by_step[-recent:]} if recent else set()
    evaluated = sorted((c for c in saved if c.eval_loss is not None), key=lambda c: (c.eval_loss, -c.step))
    keep |= {c.name for c in evaluated[:best]}
    why = " nor ".join(w for w in (f"the {best} best by eval loss" if best else "",
                                   f"the {recent} most recent" if recent else "the latest") if w)
    return {c.name: f"not among {why}" for c in by_step if c.name not in keep}


def on_disk(folder: Path) -> list[Saved]:
    return [Saved(d.name, step_of(d.name), eval_loss(d)) for d in folder.iterdir()
            if d.is_dir() and not d.is_symlink() and is_own(d.name)] if folder.is_dir() else []


class RetentionCallback(TrainerCallback):  # type: ignore[misc]  # transformers is read as Any
    """Runs after each save (after the reporting callback has announced the new checkpoint)."""

    def __init__(self, sink: EventSink, recent: int, best: int) -> None:
        self.sink = sink
        self.recent = recent
        self.best = best

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if not state.is_world_process_zero:  # one process deletes (every rank sees the same folder)
            return
        folder = Path(args.output_dir)
        for name, reason in to_delete(on_disk(folder), self.recent, self.best).items():
            shutil.rmtree(folder / name, ignore_errors=True)
            self.sink.emit(checkpoint_deleted={"name": name, "reason": reason})
