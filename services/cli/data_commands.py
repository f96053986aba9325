"""The `ftlab` commands on data and on this machine: artifacts, upload, datasets, download, analyze; serve,
make-tiny-model, make-dataset. Each fetches through the SDK client and hands what it got to render.py."""

from __future__ import annotations

import argparse
from pathlib import Path

from services.cli import jobfile
from services.cli.context import console, err_console, open_client, print_json


def cmd_serve(args: argparse.Namespace, rest: list[str]) -> int:
    from services.runner import COMPONENTS, main

    main(list(args.only or COMPONENTS), rest)
    return 0


def cmd_artifacts(args: argparse.Namespace, _: list[str]) -> int:
    from services.cli.render import artifacts_table

    with open_client(args) as client:
        artifacts = client.list_artifacts(args.job)
    if args.json:
        print_json(list(artifacts))
    else:
        console.print(artifacts_table(artifacts))
    return 0


def cmd_upload(args: argparse.Namespace, _: list[str]) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with open_client(args) as client, Progress("[progress.description]{task.description}", BarColumn(),
                                               DownloadColumn(), TransferSpeedColumn(), console=err_console,
                                               disable=args.quiet) as bar:
        task = bar.add_task(Path(args.file).name, total=Path(args.file).stat().st_size)
        dataset = client.upload_dataset(args.file, progress=lambda done, total: bar.update(task, completed=done))
    if args.json:
        print_json(dataset)
    else:
        from services.cli.render import dataset_report

        dataset_report(console, dataset)
    return 0


def cmd_datasets(args: argparse.Namespace, _: list[str]) -> int:
    from services.cli.render import datasets_table

    with open_client(args) as client:
        datasets = client.list_datasets()
    if args.json:
        print_json(datasets)
    else:
        console.print(datasets_table(datasets))
    return 0


def cmd_download(args: argparse.Namespace, _: list[str]) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    from ftlab import FtlabError

    out = args.output or None
    args.what = args.what or ("adapter" if args.merged else "checkpoint")
    args.checkpoint = args.checkpoint or ("best" if args.what == "checkpoint" else "")
    with open_client(args) as client, Progress("[progress.description]{task.description}", BarColumn(),
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


def cmd_analyze(args: argparse.Namespace, _: list[str]) -> int:
    from ftlab import state_name
    from services.cli.render import analysis_json, analysis_panel

    with open_client(args) as client:
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


def cmd_make_tiny_model(args: argparse.Namespace, _: list[str]) -> int:
    from services.trainer.tiny import make_tiny_model  # imports torch: only this command needs it

    path = make_tiny_model(args.dir, hidden_size=args.hidden_size, layers=args.layers)
    console.print(f"tiny Qwen2 model and tokenizer written to {path}")
    return 0


def cmd_make_dataset(args: argparse.Namespace, _: list[str]) -> int:
    """A small chat dataset of arithmetic questions: easy to learn, so the loss visibly falls."""
    from services.common.arithmetic_chat import write_arithmetic_chat

    out = write_arithmetic_chat(Path(args.file), args.rows, args.seed)
    console.print(f"{args.rows} chat rows written to {out}")
    return 0
