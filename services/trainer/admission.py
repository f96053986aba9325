"""What a StartRun may ask, and the run's place in the store: ids as the scheduler makes them (they
become paths), a config that names what to train, a checkpoint of the job or of its parent and
nothing else; its folders made without following a link; its spec written (runspec.py)."""

from __future__ import annotations

import errno
import re
from pathlib import Path

from ftlab.v1 import config_pb2
from services.common import checkpoints, safefs
from services.common.access import Policy, Roots
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, ResourceExhausted
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


def prepare(paths: Paths, run_id: str, job_id: str, config: config_pb2.TrainingConfig, resume_checkpoint: str,
            weights_only: bool) -> Path:
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
        resume_weights_only=weights_only)
    safefs.write_file(store, run_dir / "spec.json", spec.to_json())
    return run_dir
