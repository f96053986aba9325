"""How the CLI shows what runs produced (rich): evaluation scores, answers to sample prompts, and
runs compared side by side."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from ftlab.v1 import events_pb2
from services.cli.render import in_words

if TYPE_CHECKING:
    from ftlab.compare import Comparison


def evaluation_table(results: events_pb2.EvaluationResults) -> Table:
    """An evaluation's scores: each task and metric, the fine-tuned model beside the base."""
    table = Table("TASK", "METRIC", "FINE-TUNED", "BASE", "CHANGE", "ROWS", box=None,
                  title=f"evaluation of {results.weights or 'the job'} ({results.seconds:.0f}s)", title_justify="left")
    by: dict[tuple[str, str], dict[str, events_pb2.EvaluationScore]] = {}
    for s in results.scores:
        by.setdefault((s.task, s.metric), {})[s.model] = s

    def shown(s: events_pb2.EvaluationScore | None) -> str:
        if s is None:
            return "-"
        return f"{s.value:.4f}" + (f" ± {s.stderr:.4f}" if s.HasField("stderr") else "")

    for (task, metric), models in by.items():
        tuned, base = models.get("fine-tuned"), models.get("base")
        change = f"{tuned.value - base.value:+.4f}" if tuned is not None and base is not None else "-"
        either = tuned or base
        rows = either.samples if either is not None else 0
        table.add_row(task, metric, shown(tuned), shown(base), change, str(rows))
    return table


def one_line(answer: str) -> str:
    """A generated answer on one line (line breaks shown as ⏎), or "(blank)" where it is only space."""
    text = " ⏎ ".join(line.strip() for line in answer.strip().splitlines() if line.strip())
    return text or "(blank)"


def samples_table(samples: events_pb2.Samples) -> Table:
    """A job's answers at one step: each prompt and its answer."""
    when = "the final model" if samples.final else f"step {samples.step}"
    table = Table("PROMPT", "ANSWER", box=None, title=f"answers of {when} ({samples.seconds:.1f}s)",
                  title_justify="left")
    for a in samples.answers:
        table.add_row(a.prompt, one_line(a.completion))
    return table


def comparison_view(console: Console, result: Comparison) -> None:
    """Runs side by side: an overview, the config fields that differ from the first job's, each
    run's loss curve, and their answers to the same prompts."""
    from services.cli.watch import sparkline

    def number(value: float | None, digits: int = 4) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    runs = result.runs
    overview = Table("", *[r.name.removeprefix("jobs/") for r in runs], box=None, title="runs", title_justify="left")
    rows: list[tuple[str, list[str]]] = [
        ("name", [r.display_name or "-" for r in runs]),
        ("state", [r.state for r in runs]),
        ("steps", [f"{r.steps}/{r.max_steps}" for r in runs]),
        ("train loss (last, best)", [f"{number(r.train_loss)}, {number(r.best_train_loss)}" for r in runs]),
        ("eval loss (last)", [number(r.eval_loss) for r in runs]),
        ("eval loss (best, step)", [f"{number(r.best_eval_loss)} at {r.best_eval_step}" if r.best_eval_step is not None
                                    else "-" for r in runs]),
        ("tokens/s (median)", [number(r.tokens_per_second, 0) for r in runs]),
        ("lineage", [" <- ".join(p.removeprefix("jobs/") for p in r.lineage) or "-" for r in runs]),
        ("ended", [r.state_reason or "-" for r in runs]),
    ]
    for label, values in rows:
        overview.add_row(label, *values)
    console.print(overview)
    if result.changes:
        changes = Table("FIELD", *[r.name.removeprefix("jobs/") for r in runs], box=None,
                        title="config: what differs from the first", title_justify="left")
        for name, values in result.changes.items():
            changes.add_row(name, *["-" if v is None else json.dumps(in_words(v)).strip('"') for v in values])
        console.print(changes)
    else:
        console.print("config: the same in every job")
    metrics = list(dict.fromkeys(k for r in runs for k in r.scores))
    if metrics:
        scores = Table("TASK METRIC", *[r.name.removeprefix("jobs/") for r in runs], box=None,
                       title="evaluation (the latest, fine-tuned)", title_justify="left")
        for key in metrics:
            scores.add_row(key, *[f"{r.scores[key]:.4f}" if key in r.scores else "-" for r in runs])
        console.print(scores)
    curves = Table("JOB", "LOSS", box=None, title="training loss", title_justify="left")
    for r in runs:
        curves.add_row(r.name.removeprefix("jobs/"), sparkline(r.losses, 60) or "-")
    console.print(curves)
    if result.prompts:
        answers = Table("PROMPT", *[r.name.removeprefix("jobs/") for r in runs], box=None,
                        title="answers (the final model's, or the latest)", title_justify="left")
        for prompt in result.prompts:
            answers.add_row(prompt, *[one_line(r.answers[prompt]) if prompt in r.answers else "-" for r in runs])
        console.print(answers)

