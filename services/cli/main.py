"""The `ftlab` command line: run the server, submit and watch jobs, and make a tiny model to try it.

Server address: --address or FTLAB_ADDRESS (default localhost:50051). Data directory: FTLAB_HOME.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
from pathlib import Path

from rich.console import Console

from services.cli import jobfile

_WIDTH = None if sys.stdout.isatty() else 160  # rich assumes 80 columns when piped
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH, soft_wrap=True)  # an error stays one line


def _client(args):
    from ftlab import Client

    return Client(args.address, timeout=args.timeout)


def _print_json(value) -> None:
    """A message, or a list of them, as JSON on stdout (field names as in the protos)."""
    from google.protobuf import json_format
    from google.protobuf.message import Message

    def plain(v):
        return json_format.MessageToDict(v, preserving_proto_field_name=True) if isinstance(v, Message) else v

    print(json.dumps([plain(v) for v in value] if isinstance(value, list) else plain(value), indent=2))


def cmd_serve(args, rest):
    from services.runner import COMPONENTS, main

    main(list(args.only or COMPONENTS), rest)
    return 0


def cmd_submit(args, _):
    from ftlab import apply_set, config_from_dict
    from ftlab.config import resolve_local_paths

    values = jobfile.load(args.file) if args.file else {}
    # the file's own keys that are not config fields come out whatever flags are given; the flags win
    in_file = {key: values.pop(key, None) for key in ("template", "display_name", "priority")}
    template = args.template or str(in_file["template"] or "")
    name = args.name or str(in_file["display_name"] or "")
    try:
        priority = args.priority if args.priority is not None else int(in_file["priority"] or 0)
    except (TypeError, ValueError):
        raise jobfile.JobFileError(f"{args.file}{jobfile.field_line(args.file, 'priority')}: priority: "
                                   f"cannot use {in_file['priority']!r}: a whole number") from None
    config = jobfile.config_of_file(args.file, values) if args.file else config_from_dict({})
    if args.file:  # paths in a job file are where the file is; those given with --set, where the user is
        resolve_local_paths(config, os.path.dirname(os.path.abspath(args.file)))
    for assignment in args.set or []:
        apply_set(config, assignment)
    with _client(args) as client:
        if args.dry_run:
            return _dry_run(client.create_job(config, template=template, display_name=name, priority=priority,
                                              validate_only=True), args.json)
        job = client.create_job(config, template=template, display_name=name, priority=priority, force=args.force)
        if args.json and not args.watch:
            _print_json(job)
        else:
            console.print(job.name if not args.quiet else job.id)
            if not args.quiet:  # what pre-flight warned of is said now, not only in `get`
                from services.cli.render import preflight_findings

                preflight_findings(err_console, job)
        if args.watch:
            from services.cli.watch import watch

            return watch(client, job.name, console, as_json=args.json)
    return 0


def _dry_run(job, as_json: bool) -> int:
    """What `submit` would queue: the resolved config and every pre-flight finding; nothing is created.
    Exit 2 when pre-flight would refuse it."""
    from ftlab.config import to_dict
    from services.cli.render import in_words, preflight_findings

    if as_json:
        _print_json(job)
    else:
        console.print(f"dry run: nothing was created; template {job.template or 'basic'}, resolved config:")
        console.print(json.dumps(in_words(to_dict(job.config)), indent=2))
        passed = [c.name for c in job.preflight.checks if c.status == 1]
        if passed:
            console.print(f"pre-flight passed: {', '.join(passed)}")
        preflight_findings(console, job)
        console.print("pre-flight: it can run" if job.preflight.ok else
                      "pre-flight: it would be refused (add --force to queue it anyway)")
    return 0 if job.preflight.ok else EXIT_USAGE


def cmd_retry(args, _):
    from ftlab import apply_set
    from ftlab.v1 import config_pb2, job_pb2
    from services.cli.render import words

    changes = config_pb2.TrainingConfig()
    for assignment in args.set or []:
        apply_set(changes, assignment)
    with _client(args) as client:
        job = client.retry_job(args.job, changes, checkpoint=args.checkpoint, apply_suggestions=args.apply_suggestions,
                               force=args.force)
        if args.json and not args.watch:
            _print_json(job)
        elif args.quiet:
            console.print(job.id)
        else:
            parent = client.get_job(job.parent)
            kind = "continuation" if parent.state == job_pb2.JOB_STATE_SUCCEEDED else "retry"
            console.print(f"{job.name} ({kind} of {job.parent}"
                          + (f" from {job.resume_checkpoint.rsplit('/', 1)[-1]})" if job.resume_checkpoint else ")"))
            for c in job.changes:
                console.print(f"  {c.field}: {words(c.current)} -> [bold]{words(c.suggested)}[/bold]  [dim]{c.reason}[/dim]")
            events = client.list_events(job.name)
            if events:
                console.print(f"  [dim]{events[0].state_changed.reason}[/dim]")
        if args.watch:
            from services.cli.watch import watch

            return watch(client, job.name, console, as_json=args.json)
    return 0


def cmd_jobs(args, _):
    from ftlab import state_name
    from ftlab.v1 import job_pb2
    from services.cli.render import jobs_table

    names = [state_name(v.number) for v in job_pb2.JobState.DESCRIPTOR.values if v.number]
    for s in args.state or []:
        if s.strip().lower() not in names:
            raise ValueError(f"--state: unknown state {s!r}; one of {', '.join(names)}")
    states = [job_pb2.JobState.Value("JOB_STATE_" + s.strip().upper()) for s in args.state or []]
    with _client(args) as client:
        jobs = list(client.list_jobs(states=states))
    if args.json:
        _print_json(jobs)
        return 0
    console.print(jobs_table(jobs))
    return 0


def cmd_get(args, _):
    from services.cli.config_view import print_config
    from services.cli.render import job_json, job_panel

    with _client(args) as client:
        job = client.get_job(args.job)
        template = None if args.json else next(
            (t.resolved for t in client.list_templates() if t.name == (job.template or "basic")), None)
    if args.json:
        print(job_json(job))
        return 0
    job_panel(console, job)
    print_config(console, job.config, template, job.template or "basic")
    return 0


def cmd_watch(args, _):
    from services.cli.watch import watch

    with _client(args) as client:
        return watch(client, args.job, console, as_json=args.json)


def cmd_checkpoints(args, _):
    from services.cli.render import checkpoints_table

    with _client(args) as client:
        checkpoints = client.list_checkpoints(args.job)
    if args.json:
        _print_json(list(checkpoints))
    else:
        console.print(checkpoints_table(checkpoints))
    return 0


def cmd_templates(args, _):
    from ftlab.config import to_dict
    from services.cli.render import in_words

    with _client(args) as client:
        templates = client.list_templates()
    if args.json:
        _print_json(list(templates))
        return 0
    for t in templates:
        console.print(f"[bold]{t.name}[/]: {t.description}")
        if args.verbose:  # the values as a job file writes them: "lora", "steps", not ADAPTER_LORA
            console.print(json.dumps(in_words(to_dict(t.config)), indent=2))
    return 0


def cmd_control(args, _):
    from services.cli.render import state_name

    with _client(args) as client:
        if args.command == "cancel":
            job = client.cancel_job(args.job, grace_seconds=args.grace)
        elif args.command == "pause":
            job = client.pause_job(args.job)
        else:
            job = client.resume_job(args.job, checkpoint_name=args.checkpoint or "")
    if args.json:
        _print_json(job)
    else:
        console.print(f"{job.name} {state_name(job.state)}")
    return 0


def cmd_artifacts(args, _):
    from rich.table import Table

    from ftlab.v1 import artifact_service_pb2 as apb
    from services.cli.render import human_bytes

    with _client(args) as client:
        artifacts = client.list_artifacts(args.job)
    if args.json:
        from google.protobuf import json_format

        print(json.dumps([json_format.MessageToDict(a, preserving_proto_field_name=True) for a in artifacts], indent=2))
        return 0
    table = Table("NAME", "KIND", "SIZE", "STEP", "EVAL LOSS", "", box=None)
    for a in artifacts:
        marks = ", ".join(m for m, on in (("best", a.is_best), ("latest", a.is_latest)) if on)
        table.add_row(a.name, apb.ArtifactKind.Name(a.kind).removeprefix("ARTIFACT_KIND_").lower(),
                      human_bytes(a.size_bytes), str(a.step or ""),
                      f"{a.eval_loss:.4f}" if a.HasField("eval_loss") else "", marks)
    console.print(table)
    return 0


def cmd_upload(args, _):
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with _client(args) as client, Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                                           TransferSpeedColumn(), console=err_console, disable=args.quiet) as bar:
        task = bar.add_task(Path(args.file).name, total=Path(args.file).stat().st_size)
        dataset = client.upload_dataset(args.file, progress=lambda done, total: bar.update(task, completed=done))
    if args.json:
        from google.protobuf import json_format

        print(json.dumps(json_format.MessageToDict(dataset, preserving_proto_field_name=True), indent=2))
        return 0
    console.print(f"[bold]{dataset.name}[/]  ({dataset.filename}, {dataset.size_bytes:,} bytes)")
    console.print(f"format {dataset.format}, {dataset.rows:,} rows usable, {dataset.bad_row_count:,} bad")
    for bad in dataset.bad_rows[:20]:
        console.print(f"  line {bad.line}: {bad.reason}")
    if dataset.bad_row_count > 20:
        console.print(f"  ... and {dataset.bad_row_count - 20:,} more")
    console.print(f"use it in a job as: \"dataset\": {{\"uri\": \"{dataset.name}\"}}")
    return 0


def cmd_datasets(args, _):
    from services.cli.render import datasets_table

    with _client(args) as client:
        datasets = client.list_datasets()
    if args.json:
        _print_json(datasets)
    else:
        console.print(datasets_table(datasets))
    return 0


def cmd_download(args, _):
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    from ftlab import FtlabError

    out = args.output or None
    args.what = args.what or ("adapter" if args.merged else "checkpoint")
    args.checkpoint = args.checkpoint or ("best" if args.what == "checkpoint" else "")
    with _client(args) as client, Progress("[progress.description]{task.description}", BarColumn(),
                                           DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                                           console=err_console, disable=args.quiet) as bar:
        task = bar.add_task(f"{args.job} {args.what}", total=None)
        if out is None:
            out = f"{args.job.removeprefix('jobs/')}-{args.checkpoint if args.what == 'checkpoint' else args.what}.zip"
        try:
            got = client.download(args.job, out, what=args.what, checkpoint=args.checkpoint, merged=args.merged,
                                  progress=lambda done, total: bar.update(task, completed=done, total=total))
        except FtlabError:
            if Path(out + ".part").is_file():
                err_console.print(f"{out}.part keeps the bytes received: the same command resumes from there")
            raise
    note = f", resumed from {got.resumed_from:,} bytes" if got.resumed_from else ""
    console.print(f"{got.path}: {got.size_bytes:,} bytes, {got.files} files match the manifest's sha256{note}")
    return 0


def cmd_analyze(args, _):
    from ftlab import state_name
    from services.cli.render import analysis_json, analysis_panel

    with _client(args) as client:
        if args.log:
            config = jobfile.config_of_file(args.config, jobfile.load(args.config)) if args.config else None
            analysis = client.analyze_failure(Path(args.log).read_text(errors="replace"), config, args.exit_code)
        elif args.job:
            job = client.get_job(args.job)
            if not job.HasField("analysis") or not job.analysis.category:
                err_console.print(f"{job.name} has no failure analysis: it is {state_name(job.state)}"
                                  + (f" ({job.state_reason})" if job.state_reason else ""))
                return 1
            analysis = job.analysis
        else:
            err_console.print("error: name a JOB or give --log FILE")
            return 2
    if args.json:
        print(analysis_json(analysis))
    else:
        analysis_panel(console, analysis)
    return 0


def cmd_queue(args, _):
    from rich.table import Table

    from services.cli.render import duration

    with _client(args) as client:
        q = client.get_queue()
    if args.json:
        _print_json(q)
        return 0
    console.print(f"{q.running} running, {len(q.entries)} queued, {q.free_slots} free slot(s)")
    table = Table("#", "JOB", "OWNER", "PRIORITY", "WAITING", "STARTS IN", box=None)
    for e in q.entries:
        table.add_row(str(e.position), e.job.removeprefix("jobs/") or "(another user's)", e.owner or "-",
                      str(e.priority), duration(e.wait_seconds),
                      duration(e.estimated_start_seconds) if e.HasField("estimated_start_seconds") else "?")
    console.print(table)
    return 0


def cmd_priority(args, _):
    with _client(args) as client:
        job = client.set_priority(args.job, args.priority)
    if args.json:
        _print_json(job)
    else:
        console.print(f"{job.name} priority {job.priority}")
    return 0


def cmd_make_tiny_model(args, _):
    from services.trainer.tiny import make_tiny_model

    path = make_tiny_model(args.dir, hidden_size=args.hidden_size, layers=args.layers)
    console.print(f"tiny Qwen2 model and tokenizer written to {path}")
    return 0


def cmd_make_dataset(args, _):
    """A small chat dataset of arithmetic questions: easy to learn, so the loss visibly falls."""
    rng = random.Random(args.seed)
    out = Path(args.file)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for _ in range(args.rows):
            a, b = rng.randint(0, 99), rng.randint(0, 99)
            row = {"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                                {"role": "assistant", "content": f"{a} plus {b} is {a + b}."}]}
            f.write(json.dumps(row) + "\n")
    console.print(f"{args.rows} chat rows written to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ftlab", description="FineTune Lab: fine-tuning jobs on your own GPUs.",
                                     epilog=EXIT_CODES)
    parser.add_argument("--address", default=None, help="server address (FTLAB_ADDRESS, default localhost:50051)")
    parser.add_argument("--timeout", type=float, default=30.0, help="deadline of each call, seconds")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run all four services in one process (SQLite + FTLAB_HOME)", add_help=False)
    p.add_argument("--only", action="append", choices=["scheduler", "trainer", "analyzer", "artifacts"])
    p.set_defaults(fn=cmd_serve)

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
    p.set_defaults(fn=cmd_submit)

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
    p.set_defaults(fn=cmd_retry)

    p = sub.add_parser("jobs", help="list your jobs")
    p.add_argument("--state", action="append", help="only jobs in this state (queued, running, failed...)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=cmd_jobs)

    p = sub.add_parser("get", help="show one job: its state, progress, findings and its whole resolved config, "
                                   "grouped, with what it changed from its template marked *")
    p.add_argument("job")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_get)

    p = sub.add_parser("watch", help="watch a job live until it ends (exit status 1 unless it succeeds)")
    p.add_argument("job")
    p.add_argument("--json", action="store_true", help="print JSON lines, one per event")
    p.set_defaults(fn=cmd_watch)

    p = sub.add_parser("checkpoints", help="list a job's checkpoints")
    p.add_argument("job")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=cmd_checkpoints)

    p = sub.add_parser("artifacts", help="list what a job produced")
    p.add_argument("job")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=cmd_artifacts)

    p = sub.add_parser("upload", help="upload a dataset (JSONL, JSON, CSV, Parquet) and print its report")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_upload)

    p = sub.add_parser("datasets", help="list your uploaded datasets: name, file, format, rows, size, when")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=cmd_datasets)

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
    p.set_defaults(fn=cmd_download)

    p = sub.add_parser("templates", help="list the job templates")
    p.add_argument("-v", "--verbose", action="store_true", help="show each template's values")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=cmd_templates)

    for name, text in (("cancel", "cancel a job"), ("pause", "pause a running job at its next step, saving a checkpoint"),
                       ("resume", "queue a paused job again, to continue from its checkpoint")):
        p = sub.add_parser(name, help=text)
        p.add_argument("job")
        if name == "cancel":
            p.add_argument("--grace", type=float, default=None, help="seconds between SIGTERM and SIGKILL")
        if name == "resume":
            p.add_argument("--checkpoint", default=None, help="continue from this checkpoint instead of the latest")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(fn=cmd_control)

    p = sub.add_parser("analyze", help="why a job failed and what to change (a failed JOB, or --log FILE)")
    p.add_argument("job", nargs="?")
    p.add_argument("--log", help="analyze this log file instead of a job's")
    p.add_argument("--config", help="the run's config (JSON or YAML TrainingConfig fields), for suggestions")
    p.add_argument("--exit-code", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(fn=cmd_analyze)

    p = sub.add_parser("queue", help="show the queue: order, waiting time and estimated start")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=cmd_queue)

    p = sub.add_parser("priority", help="change the priority of a queued or paused job (higher runs first)")
    p.add_argument("job")
    p.add_argument("priority", type=int)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=cmd_priority)

    p = sub.add_parser("make-tiny-model", help="write a tiny random Qwen2 model and tokenizer to DIR")
    p.add_argument("dir")
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.set_defaults(fn=cmd_make_tiny_model)

    p = sub.add_parser("make-dataset", help="write a small chat dataset (JSONL) to try jobs with")
    p.add_argument("file")
    p.add_argument("--rows", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_make_dataset)
    return parser


# Exit statuses a shell can rely on (also in `ftlab --help`).
EXIT_OK, EXIT_NOT_SUCCEEDED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_DENIED, EXIT_UNAVAILABLE, EXIT_SERVER = 0, 1, 2, 3, 4, 5, 6
EXIT_CODES = """exit status: 0 done (for watch: the job succeeded or paused; an empty listing is done too);
1 the job watched failed or was cancelled, or `analyze JOB` found no failure analysis to show;
2 bad usage or input (INVALID_ARGUMENT, FAILED_PRECONDITION, a job file that does not parse, ...);
3 no such job or artifact (NOT_FOUND); 4 not allowed (UNAUTHENTICATED, PERMISSION_DENIED);
5 the server cannot be reached (UNAVAILABLE, DEADLINE_EXCEEDED); 6 any other server error"""


def exit_code(code) -> int:
    name = code.name
    if name == "NOT_FOUND":
        return EXIT_NOT_FOUND
    if name in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return EXIT_DENIED
    if name in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        return EXIT_UNAVAILABLE
    if name in ("INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE", "ALREADY_EXISTS", "RESOURCE_EXHAUSTED",
                "ABORTED"):
        return EXIT_USAGE
    return EXIT_SERVER


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "serve":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    from ftlab.client import FtlabError

    try:
        return args.fn(args, rest)
    except FtlabError as exc:
        if exc.code.name == "UNAVAILABLE" and "failed to connect" in exc.message:
            address = args.address or os.environ.get("FTLAB_ADDRESS") or "localhost:50051"
            err_console.print(f"[red]error:[/] no FineTune Lab server answers at {address}. Start one with "
                              "`ftlab serve`, or point --address or FTLAB_ADDRESS at yours; a server with TLS "
                              "needs FTLAB_TLS_CA, the CA file that signed its certificate.")
            return exit_code(exc.code)
        message = exc.message
        if exc.reason == "PREFLIGHT_FAILED":  # the CLI's word for the SDK's force=True
            message = message.replace("set force to queue it anyway", "add --force to queue it anyway")
        err_console.print(f"[red]error:[/] {exc.code.name}: {message}")
        for field, description in exc.field_violations:
            if f"{field}: {description}" not in message:  # said once
                err_console.print(f"  {field}: {description}")
        for subject, description in exc.preconditions:
            err_console.print(f"  {subject}: {description}")
        return exit_code(exc.code)
    except BrokenPipeError:  # `ftlab watch --json | head`: the reader has gone; end quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except (ValueError, OSError) as exc:
        err_console.print(f"[red]error:[/] {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
