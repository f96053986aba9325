"""The `ftlab` commands on jobs: submit, retry, jobs, get, watch, checkpoints, templates, cancel/pause/resume, queue,
priority. Each fetches through the SDK client and hands what it got to render.py."""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING

from services.cli import jobfile
from services.cli.context import console, err_console, open_client, print_json
from services.cli.exits import EXIT_USAGE

if TYPE_CHECKING:
    from ftlab.v1 import job_pb2


def cmd_submit(args: argparse.Namespace, _: list[str]) -> int:
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
    with open_client(args) as client:
        if args.dry_run:
            return _dry_run(client.create_job(config, template=template, display_name=name, priority=priority,
                                              validate_only=True), args.json)
        job = client.create_job(config, template=template, display_name=name, priority=priority, force=args.force)
        if args.json and not args.watch:
            print_json(job)
        else:
            console.print(job.name if not args.quiet else job.id)
            if not args.quiet:  # what pre-flight warned of is said now, not only in `get`
                from services.cli.render import preflight_findings

                preflight_findings(err_console, job)
        if args.watch:
            from services.cli.watch import watch

            return watch(client, job.name, console, as_json=args.json)
    return 0


def _dry_run(job: job_pb2.Job, as_json: bool) -> int:
    """What `submit` would queue; nothing is created. Exit 2 when pre-flight would refuse it."""
    if as_json:
        print_json(job)
    else:
        from services.cli.render import dry_run_panel

        dry_run_panel(console, job)
    return 0 if job.preflight.ok else EXIT_USAGE


def cmd_retry(args: argparse.Namespace, _: list[str]) -> int:
    from ftlab import apply_set
    from ftlab.v1 import config_pb2
    from services.cli.render import retry_panel

    changes = config_pb2.TrainingConfig()
    for assignment in args.set or []:
        apply_set(changes, assignment)
    with open_client(args) as client:
        job = client.retry_job(args.job, changes, checkpoint=args.checkpoint, apply_suggestions=args.apply_suggestions,
                               force=args.force)
        if args.json and not args.watch:
            print_json(job)
        elif args.quiet:
            console.print(job.id)
        else:
            retry_panel(console, job, client.get_job(job.parent), client.list_events(job.name))
        if args.watch:
            from services.cli.watch import watch

            return watch(client, job.name, console, as_json=args.json)
    return 0


def cmd_jobs(args: argparse.Namespace, _: list[str]) -> int:
    from ftlab import state_name
    from ftlab.v1 import job_pb2
    from services.cli.render import jobs_table

    names = [state_name(v.number) for v in job_pb2.JobState.DESCRIPTOR.values if v.number]
    for s in args.state or []:
        if s.strip().lower() not in names:
            raise ValueError(f"--state: unknown state {s!r}; one of {', '.join(names)}")
    states = [job_pb2.JobState.Value("JOB_STATE_" + s.strip().upper()) for s in args.state or []]
    with open_client(args) as client:
        jobs = list(client.list_jobs(states=states))
    if args.json:
        print_json(jobs)
        return 0
    console.print(jobs_table(jobs))
    return 0


def cmd_get(args: argparse.Namespace, _: list[str]) -> int:
    from services.cli.config_view import print_config
    from services.cli.render import job_json, job_panel

    with open_client(args) as client:
        job = client.get_job(args.job)
        template = None if args.json else next(
            (t.resolved for t in client.list_templates() if t.name == (job.template or "basic")), None)
    if args.json:
        print(job_json(job))
        return 0
    job_panel(console, job)
    print_config(console, job.config, template, job.template or "basic")
    return 0


def cmd_watch(args: argparse.Namespace, _: list[str]) -> int:
    from services.cli.watch import watch

    with open_client(args) as client:
        return watch(client, args.job, console, as_json=args.json)


def cmd_checkpoints(args: argparse.Namespace, _: list[str]) -> int:
    from services.cli.render import checkpoints_table

    with open_client(args) as client:
        checkpoints = client.list_checkpoints(args.job)
    if args.json:
        print_json(list(checkpoints))
    else:
        console.print(checkpoints_table(checkpoints))
    return 0


def cmd_samples(args: argparse.Namespace, _: list[str]) -> int:
    from services.cli.render_results import samples_table

    with open_client(args) as client:
        samples = client.list_samples(args.job, args.checkpoint or "")
    if args.json:
        print_json(samples)
    elif not samples:
        console.print(f"{args.job} has no answers to sample prompts"
                      + (f" at {args.checkpoint}" if args.checkpoint else " (set samples.prompts in its config)"))
    else:
        for s in samples:
            console.print(samples_table(s))
    return 0


def cmd_eval(args: argparse.Namespace, _: list[str]) -> int:
    tasks: list[str] = [*(args.task or []), *(args.harness_task or [])]
    if not tasks:
        raise ValueError("give at least one --task FILE (.jsonl rows or a .yaml task definition) or --harness-task "
                         "NAME")
    with open_client(args) as client:
        job = client.evaluate(args.job, tasks, checkpoint=args.checkpoint or "", compare_base=not args.no_base,
                              limit=args.limit, max_new_tokens=args.max_new_tokens, builtin=not args.no_builtin)
        if args.watch:
            from services.cli.watch import watch

            code = watch(client, job.name, console, as_json=args.json)
            if code == 0 and not args.json:
                from services.cli.render_results import evaluation_table

                console.print(evaluation_table(client.get_job(job.name).evaluation_results))
            return code
    if args.json:
        print_json(job)
    else:
        console.print(job.name)
    return 0


def cmd_generate(args: argparse.Namespace, _: list[str]) -> int:
    messages: list[dict[str, str]] = []
    if args.messages:
        loaded = json.loads(open(args.messages, encoding="utf-8").read())
        messages = loaded.get("messages", []) if isinstance(loaded, dict) else loaded
        if not isinstance(messages, list) or not all(isinstance(m, dict) and set(m) <= {"role", "content"}
                                                     for m in messages):
            raise ValueError(f"--messages {args.messages}: a JSON list of {{\"role\", \"content\"}} objects (or "
                             "{\"messages\": [...]})")
    if bool(messages) == bool(args.prompt):
        raise ValueError("give --prompt TEXT or --messages FILE")
    text, done, weights = [], None, ""
    with open_client(args) as client:
        for piece in client.generate(args.job, args.prompt or "", messages=messages, checkpoint=args.checkpoint or "",
                                     max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                     seed=args.seed):
            if piece.HasField("done"):
                done, weights = piece.done, piece.weights
            text.append(piece.text)
            if args.stream and not args.json:
                print(piece.text, end="", flush=True)
    if args.json:
        from google.protobuf import json_format

        print(json.dumps({"text": "".join(text), "weights": weights, "done": json_format.MessageToDict(
            done, preserving_proto_field_name=True) if done is not None else None}))
        return 0
    if not args.stream:
        print("".join(text))
    else:
        print()
    if done is not None:
        err_console.print(f"[dim]{weights}: {done.tokens} tokens, first after {done.first_token_seconds:.2f}s"
                          + (f" (loading {done.load_seconds:.1f}s)" if done.load_seconds else "")
                          + f", {done.seconds:.2f}s in all, ended by {done.finish_reason}[/]")
    return 0


def cmd_compare(args: argparse.Namespace, _: list[str]) -> int:
    import dataclasses

    from ftlab.compare import compare
    from services.cli.render_results import comparison_view

    with open_client(args) as client:
        result = compare(client, args.jobs)
    if args.json:
        print(json.dumps(dataclasses.asdict(result), indent=2))
    else:
        comparison_view(console, result)
    return 0


def cmd_templates(args: argparse.Namespace, _: list[str]) -> int:
    from services.cli.render import templates_panel

    with open_client(args) as client:
        templates = client.list_templates()
    if args.json:
        print_json(list(templates))
    else:
        templates_panel(console, templates, args.verbose)
    return 0


def cmd_control(args: argparse.Namespace, _: list[str]) -> int:
    """cancel, pause or resume, as the sub-command says."""
    from services.cli.render import state_name

    with open_client(args) as client:
        if args.command == "cancel":
            job = client.cancel_job(args.job, grace_seconds=args.grace)
        elif args.command == "pause":
            job = client.pause_job(args.job)
        else:
            job = client.resume_job(args.job, checkpoint_name=args.checkpoint or "")
    if args.json:
        print_json(job)
    else:
        console.print(f"{job.name} {state_name(job.state)}")
    return 0


def cmd_queue(args: argparse.Namespace, _: list[str]) -> int:
    from services.cli.render import queue_panel

    with open_client(args) as client:
        queue = client.get_queue()
    if args.json:
        print_json(queue)
    else:
        queue_panel(console, queue)
    return 0


def cmd_priority(args: argparse.Namespace, _: list[str]) -> int:
    with open_client(args) as client:
        job = client.set_priority(args.job, args.priority)
    if args.json:
        print_json(job)
    else:
        console.print(f"{job.name} priority {job.priority}")
    return 0
