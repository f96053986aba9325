"""What a StartRun may ask, and the run's place in the store: ids as the scheduler makes them (they
become paths), a config that names what to train, a checkpoint of the job or of its parent and
nothing else; its folders made without following a link; its spec written (runspec.py)."""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftlab.v1 import config_pb2, job_pb2
from services.common import checkpoints, safefs
from services.common.access import Policy, Roots
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound, ResourceExhausted
from services.common.settings import Paths
from services.trainer.runspec import RunSpec

JOB_ID = re.compile(r"^[0-9a-f]{16}$")


def check(run_id: str, job_id: str, config: config_pb2.TrainingConfig) -> None:
    """A StartRun is as strict as a public call: ids as the scheduler makes them (they become paths)
    and a config that names what to train."""
    v = []
    if not JOB_ID.match(job_id):
        v.append(FieldViolation("job_id", "16 hex digits"))
    if not re.fullmatch(rf"{re.escape(job_id)}-[0-9]{{1,9}}", run_id):
        v.append(FieldViolation("run_id", "{job_id}-{attempt}"))
    if not config.base_model.strip():
        v.append(FieldViolation("config.base_model", "required"))
    if not config.dataset.uri.strip():
        v.append(FieldViolation("config.dataset.uri", "required"))
    if v:
        raise InvalidArgument(f"invalid run: {v[0].field}: {v[0].description}", violations=v)


def refusal(exc: OSError) -> ResourceExhausted | FailedPrecondition:
    """A run this trainer could not set up: a reasoned refusal (the job goes back to the queue), never
    an unknown outcome that would count as a lost worker."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceExhausted("this trainer's disk is full: the run's folder cannot be written",
                                 reason="TRAINER_DISK_FULL")
    return FailedPrecondition(f"this trainer cannot set up the run: {exc.strerror or type(exc).__name__}",
                              reason="TRAINER_SETUP_FAILED")


def checkpoint_path(paths: Paths, job_dir: Path, ref: str) -> Path:
    """A checkpoint of this job ("checkpoint-N") or of its parent ("jobs/{id}/checkpoints/checkpoint-N"),
    never anything else under or outside the store."""
    parent = checkpoints.split_parent_ref(ref)
    if parent:
        return paths.job_dir(parent[0]) / "checkpoints" / parent[1]
    if not checkpoints.is_own(ref):
        raise InvalidArgument("invalid checkpoint", violations=[FieldViolation(
            "resume_checkpoint", "checkpoint-N or jobs/{id}/checkpoints/checkpoint-N")])
    return job_dir / "checkpoints" / ref


@dataclass(frozen=True)
class Evaluation:
    """An evaluation job's run: what it measures, and whose weights (a job's id, a checkpoint or "")."""

    config: job_pb2.EvaluationConfig
    job_id: str
    checkpoint: str


def evaluation_spec(paths: Paths, evaluation: Evaluation, config: config_pb2.TrainingConfig) -> dict[str, Any]:
    """What the evaluation child reads: its tasks (files resolved), settings, and the weights."""
    if not JOB_ID.match(evaluation.job_id):  # it becomes a path
        raise InvalidArgument("invalid run: evaluated_job_id: 16 hex digits",
                              violations=[FieldViolation("evaluated_job_id", "16 hex digits")])
    access = Policy(paths, Roots((Path("/"),), (Path("/"),)))
    c = evaluation.config
    tasks = [{"name": t.name, "rows": t.rows,
              "uri": str(access.dataset(t.uri, f"evaluation.tasks[{i}].uri", None)) if t.uri else ""}
             for i, t in enumerate(c.tasks)]
    found = weights(paths, evaluation.job_id, config, evaluation.checkpoint)
    full = config.adapter == config_pb2.ADAPTER_FULL
    return {"tasks": tasks, "compare_base": c.compare_base if c.HasField("compare_base") else True,
            "limit": c.limit, "max_new_tokens": c.max_new_tokens if c.HasField("max_new_tokens") else 32,
            "builtin": c.builtin if c.HasField("builtin") else True, "weights": found,
            "weights_name": evaluation.checkpoint or ("model" if full else "adapter")}


def prepare(paths: Paths, run_id: str, job_id: str, config: config_pb2.TrainingConfig, resume_checkpoint: str,
            weights_only: bool, evaluation: Evaluation | None = None) -> Path:
    """The run's folder, with its spec.json written; raises safefs.LinkRefused where the job's folder
    holds a link, OSError where the store cannot be written."""
    job_dir = paths.job_dir(job_id)
    run_dir = job_dir / "runs" / run_id
    store = paths.artifacts
    for folder in (run_dir, job_dir / "checkpoints"):  # every level a folder of the store's, never a link
        safefs.make_dirs(store, folder)
    for name in ("model", "adapter"):  # where the run saves its result
        if (job_dir / name).is_symlink():
            raise safefs.LinkRefused(f"{name}: a link")
    # the scheduler checked the job's files as its owner; here only the store itself stays out of reach
    access = Policy(paths, Roots((Path("/"),), (Path("/"),)))
    resolved = config_pb2.TrainingConfig()
    resolved.CopyFrom(config)
    resolved.base_model = access.model(config.base_model, "config.base_model")
    resolved.dataset.uri = str(access.dataset(config.dataset.uri, "config.dataset.uri", None))
    if config.dataset.eval_uri:
        resolved.dataset.eval_uri = str(access.dataset(config.dataset.eval_uri, "config.dataset.eval_uri", None))
    if config.samples.prompts_uri:
        resolved.samples.prompts_uri = str(access.dataset(config.samples.prompts_uri, "config.samples.prompts_uri",
                                                          None))
    spec = RunSpec.build(
        resolved, job_dir=str(job_dir), checkpoints_dir=str(job_dir / "checkpoints"), run_dir=str(run_dir),
        job_id=job_id, resume_from=str(checkpoint_path(paths, job_dir, resume_checkpoint)) if resume_checkpoint else "",
        resume_weights_only=weights_only,
        evaluation=evaluation_spec(paths, evaluation, resolved) if evaluation is not None else None)
    safefs.write_file(store, run_dir / "spec.json", spec.to_json())
    return run_dir


def weights(paths: Paths, job_id: str, config: config_pb2.TrainingConfig, checkpoint: str) -> dict[str, str]:
    """Where a job's weights are (its final model for checkpoint "", else that checkpoint of it): the
    base model and an adapter, or a whole model's folder, and the tokenizer to use with them."""
    job_dir = paths.job_dir(job_id)
    full = config.adapter == config_pb2.ADAPTER_FULL
    if checkpoint:
        if not checkpoints.is_own(checkpoint):
            raise NotFound(f"job {job_id} has no checkpoint {checkpoint!r}", reason="CHECKPOINT_NOT_FOUND")
        folder = job_dir / "checkpoints" / checkpoint
    else:
        folder = job_dir / ("model" if full else "adapter")
    if not safefs.is_plain_dir(paths.artifacts, folder):
        raise NotFound(f"job {job_id} has no {checkpoint or 'trained model'} on this trainer's store",
                       reason="CHECKPOINT_NOT_FOUND")
    access = Policy(paths, Roots((Path("/"),), (Path("/"),)))  # the scheduler checked the job's files
    base = access.model(config.base_model, "config.base_model")
    has_tokenizer = any((folder / name).exists() for name in ("tokenizer.json", "tokenizer_config.json"))
    return {"model": str(folder) if full else "", "adapter": "" if full else str(folder),
            "tokenizer": str(folder) if has_tokenizer else base, "base_model": base}
