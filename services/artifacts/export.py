"""Merged models: a job's LoRA adapter (final, or a checkpoint's) merged into its base model, made
once in a child process and kept beside the job's artifacts (`merged/{source}`) for later downloads."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from ftlab.v1 import config_pb2, job_pb2
from services.artifacts.store import ArtifactStore
from services.common import safefs
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound, Precondition

log = logging.getLogger(__name__)
MERGE_TIMEOUT = 3600.0


class Exporter:
    def __init__(self, store: ArtifactStore) -> None:
        self.store = store
        self._locks: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()

    def merged(self, job: job_pb2.Job, checkpoint: str = "") -> Path:
        """The merged model's folder, made now if it is not there yet (blocking: call from a thread)."""
        if job.config.adapter == config_pb2.ADAPTER_FULL:
            raise InvalidArgument("a full fine-tune has no adapter to merge; download its model",
                                  violations=[FieldViolation("merged", "only for LoRA and QLoRA jobs")])
        root = self.store.job_dir(job.name)
        if checkpoint:
            name = self.store.checkpoint(root, checkpoint)
            source = root / "checkpoints" / name
        else:
            name, source = "adapter", root / "adapter"
        store = self.store.root
        if not safefs.is_plain_dir(store, source) or (source / "adapter_config.json").is_symlink() \
                or not (source / "adapter_config.json").is_file():
            raise NotFound(f"job has no adapter at {name} (it may not have finished)", reason="ARTIFACT_NOT_FOUND")
        target = root / "merged" / name
        try:  # merged/ and what is in it are folders of the job's own, never links to elsewhere
            safefs.make_dirs(store, root / "merged")
        except safefs.LinkRefused:
            log.error("not merging into %s: it is a link", (root / "merged").relative_to(store))
            raise FailedPrecondition("the job's merged folder is not a plain folder; ask an administrator",
                                     reason="STORE_LINK") from None
        if target.is_symlink() or (target.exists() and not safefs.is_plain_dir(store, target)):
            log.error("not serving %s: a link", target.relative_to(store))
            raise FailedPrecondition("the job's merged model is not a plain folder; ask an administrator",
                                     reason="STORE_LINK")
        with self._guard:
            lock = self._locks.setdefault(target, threading.Lock())
        with lock:  # one merge per target at a time; the others wait for it and reuse it
            if (target / "config.json").is_file():
                return target
            tmp = root / "merged" / f".tmp-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()  # new, in a folder checked above: the merge writes only here
            command = [sys.executable, "-m", "services.artifacts.merge", "--base", job.config.base_model,
                       "--adapter", str(source), "--out", str(tmp)]
            log.info("merging the adapter of %s (%s) with a copy of its base model %s; the merged model goes to "
                     "the job's merged/%s, the base model is left as it is", job.name, name, job.config.base_model,
                     target.name)
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=MERGE_TIMEOUT)
                if done.returncode != 0:
                    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                    raise FailedPrecondition(f"merging the adapter failed: {tail[0][:300]}", reason="MERGE_FAILED",
                                             preconditions=[Precondition("MERGE", "base_model", tail[0][:300])])
                tmp.rename(target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            return target
