"""The `ftlab` argument parser: every sub-command, its flags and the function it runs; exits.py's words as epilog."""

from __future__ import annotations

import argparse

from services.cli import data_commands, job_commands
from services.cli.exits import EXIT_CODES


def build_parser() -> argparse.ArgumentParser:
    """Every sub-command, its flags, and the command function it runs (`args.fn(args, rest)`)."""
    parser = argparse.ArgumentParser(prog="ftlab", description="FineTune Lab: fine-tuning jobs on your own GPUs.",
                                     epilog=EXIT_CODES)
    parser.add_argument("--address", default=None, help="server address (FTLAB_ADDRESS, default localhost:50051)")
    parser.add_argument("--timeout", type=float, default=30.0, help="deadline of each call, seconds")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run all four services in one process (SQLite + FTLAB_HOME)", add_help=False)
    p.add_argument("--only", action="append", choices=["scheduler", "trainer", "analyzer", "artifacts"])
    p.set_defaults(fn=data_commands.cmd_serve)

    p = sub.add_parser("submit", help="submit a job from a JSON or YAML config file")
    p.add_argument("file", nargs="?", help="config file (fields of TrainingConfig, plus template/display_name/priority)")
    p.add_argument("--template", help="template to start from (see `ftlab templates`)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one field, e.g. lora.rank=8")
    p.add_argument("--name", help="display name")
    p.add_argument("--priority", type=int, default=None)
    p.add_argument("--watch", action="store_true", help="watch the job until it ends")
    p.add_argument("--force", action="store_true", help="queue it even if pre-flight says it cannot run")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config and pre-flight's findings; create nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the job id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=job_commands.cmd_submit)

    p = sub.add_parser("retry", help="retry a failed or cancelled job, or continue a succeeded one, as a new job "
                                     "with changes (e.g. --set max_steps=2000 --checkpoint latest)")
    p.add_argument("job")
    p.add_argument("--apply-suggestions", action="store_true", help="apply the failure analysis' suggestions")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="change one field, e.g. learning_rate=1e-5")
    p.add_argument("--checkpoint", default="latest",
                   help="start from best (by eval loss), latest (default), a checkpoint name, or none")
    p.add_argument("--force", action="store_true", help="queue it even if pre-flight says it cannot run")
    p.add_argument("--watch", action="store_true", help="watch the new job until it ends")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the new job's id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=job_commands.cmd_retry)

    p = sub.add_parser("jobs", help="list your jobs")
    p.add_argument("--state", action="append", help="only jobs in this state (queued, running, failed...)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=job_commands.cmd_jobs)

    p = sub.add_parser("get", help="show one job: its state, progress, findings and its whole resolved config, "
                                   "grouped, with what it changed from its template marked *")
    p.add_argument("job")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=job_commands.cmd_get)

    p = sub.add_parser("watch", help="watch a job live until it ends (exit status 1 unless it succeeds)")
    p.add_argument("job")
    p.add_argument("--json", action="store_true", help="print JSON lines, one per event")
    p.set_defaults(fn=job_commands.cmd_watch)

    p = sub.add_parser("checkpoints", help="list a job's checkpoints")
    p.add_argument("job")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=job_commands.cmd_checkpoints)

    p = sub.add_parser("samples", help="a job's answers to its sample prompts, at each evaluation and at the end")
    p.add_argument("job")
    p.add_argument("--checkpoint", default=None, help="only those of this checkpoint: best, latest or a name")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=job_commands.cmd_samples)

    p = sub.add_parser("eval", help="evaluate a job's trained model (or a checkpoint) on your tasks, and its base "
                                    "model beside it, as a job of its own (lm-evaluation-harness)")
    p.add_argument("job")
    p.add_argument("--task", action="append", metavar="FILE",
                   help="a .jsonl of {prompt, answer} (generated, exact match; with pattern: a regex picks the "
                        "answer out first) or {prompt, choices, answer} (multiple choice) rows, sent with the "
                        "request; or a .yaml task definition of the harness's, by its path on the server")
    p.add_argument("--harness-task", action="append", metavar="NAME",
                   help="one of the harness's own tasks (e.g. hellaswag): the trainer must reach the Hub")
    p.add_argument("--checkpoint", default=None, help="best, latest or a checkpoint's name (default: the final model)")
    p.add_argument("--no-base", action="store_true", help="do not evaluate the base model beside it")
    p.add_argument("--no-builtin", action="store_true",
                   help="skip the perplexity and token accuracy of the job's own evaluation data")
    p.add_argument("--limit", type=int, default=0, help="score at most this many rows of each task")
    p.add_argument("--max-new-tokens", type=int, default=None, help="longest generated answer (default 32)")
    p.add_argument("--watch", action="store_true", help="watch the evaluation to its end and print its scores")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=job_commands.cmd_eval)

    p = sub.add_parser("generate", help="chat with a job's trained model, or one of its checkpoints (runs on a "
                                        "trainer; the first answer loads the weights)")
    p.add_argument("job")
    p.add_argument("--checkpoint", default=None, help="best, latest or a checkpoint's name (default: the final model)")
    p.add_argument("--prompt", default=None, help="one user message")
    p.add_argument("--messages", default=None, metavar="FILE", help="a JSON chat: [{role, content}, ...]")
    p.add_argument("--max-new-tokens", type=int, default=None, help="longest answer in tokens (default 128)")
    p.add_argument("--temperature", type=float, default=None, help="0 decodes greedily (default); above 0 samples")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--stream", action="store_true", help="print the answer as it comes")
    p.add_argument("--json", action="store_true", help="print JSON: the text and how it went")
    p.set_defaults(fn=job_commands.cmd_generate)

    p = sub.add_parser("compare", help="jobs side by side: config changes against the first, losses, speed, "
                                       "answers to the same prompts, lineage")
    p.add_argument("jobs", nargs="+", metavar="JOB")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=job_commands.cmd_compare)

    p = sub.add_parser("artifacts", help="list what a job produced")
    p.add_argument("job")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=data_commands.cmd_artifacts)

    p = sub.add_parser("upload", help="upload a dataset (JSONL, JSON, CSV, Parquet) and print its report")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=data_commands.cmd_upload)

    p = sub.add_parser("datasets", help="list your uploaded datasets: name, file, format, rows, size, when")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=data_commands.cmd_datasets)

    p = sub.add_parser("download", help="download a job's checkpoint, model, adapter or logs as a zip (resumable, "
                                        "verified against its sha256 manifest)")
    p.add_argument("job")
    p.add_argument("--what", choices=["checkpoint", "model", "adapter", "logs", "all"], default=None,
                   help="what to download (default: checkpoint; adapter with --merged)")
    p.add_argument("--checkpoint", default=None,
                   help="best (by eval loss), latest, or a name (checkpoint-N); default: best for --what checkpoint, "
                        "the job's final weights for the others")
    p.add_argument("--merged", action="store_true", help="with --what adapter: merged into the base model")
    p.add_argument("-o", "--output", default=None, help="file to write (default JOB-WHAT.zip); a partial one resumes")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=data_commands.cmd_download)

    p = sub.add_parser("templates", help="list the job templates")
    p.add_argument("-v", "--verbose", action="store_true", help="show each template's values")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=job_commands.cmd_templates)

    for name, text in (("cancel", "cancel a job"), ("pause", "pause a running job at its next step, saving a checkpoint"),
                       ("resume", "queue a paused job again, to continue from its checkpoint")):
        p = sub.add_parser(name, help=text)
        p.add_argument("job")
        if name == "cancel":
            p.add_argument("--grace", type=float, default=None, help="seconds between SIGTERM and SIGKILL")
        if name == "resume":
            p.add_argument("--checkpoint", default=None, help="continue from this checkpoint instead of the latest")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(fn=job_commands.cmd_control)

    p = sub.add_parser("analyze", help="why a job failed and what to change (a failed JOB, or --log FILE)")
    p.add_argument("job", nargs="?")
    p.add_argument("--log", help="analyze this log file instead of a job's")
    p.add_argument("--config", help="the run's config (JSON or YAML TrainingConfig fields), for suggestions")
    p.add_argument("--exit-code", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(fn=data_commands.cmd_analyze)

    p = sub.add_parser("queue", help="show the queue: order, waiting time and estimated start")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=job_commands.cmd_queue)

    p = sub.add_parser("priority", help="change the priority of a queued or paused job (higher runs first)")
    p.add_argument("job")
    p.add_argument("priority", type=int)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=job_commands.cmd_priority)

    p = sub.add_parser("make-tiny-model", help="write a tiny random Qwen2 model and tokenizer to DIR")
    p.add_argument("dir")
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.set_defaults(fn=data_commands.cmd_make_tiny_model)

    p = sub.add_parser("make-dataset", help="write a small chat dataset (JSONL) to try jobs with")
    p.add_argument("file")
    p.add_argument("--rows", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=data_commands.cmd_make_dataset)
    return parser
