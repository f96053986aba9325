"""The artifact store as the artifacts service sees it: what a job produced, by name, never by path."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

from ftlab.v1 import artifact_service_pb2 as pb
from services.common.errors import FieldViolation, InvalidArgument, NotFound
from services.common.settings import Paths

_JOB_ID = re.compile(r"^[a-f0-9]{1,32}$")


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)


class ArtifactStore:
    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    def job_dir(self, job: str) -> Path:
        job_id = job.removeprefix("jobs/")
        if not _JOB_ID.match(job_id):
            raise InvalidArgument(f"invalid job {job!r}", violations=[FieldViolation("job", "expected jobs/{id}")])
        path = self.paths.job_dir(job_id)
        if not path.is_dir():
            raise NotFound(f"no artifacts for job {job!r}", reason="JOB_NOT_FOUND")
        return path

    def list(self, job: str) -> list[pb.Artifact]:
        root = self.job_dir(job)
        out: list[pb.Artifact] = []
        checkpoints = root / "checkpoints"
        if checkpoints.is_dir():
            for d in sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[1])):
                a = pb.Artifact(name=d.name, kind=pb.ARTIFACT_KIND_CHECKPOINT, size_bytes=_size(d),
                                step=int(d.name.rsplit("-", 1)[1]))
                loss = _eval_loss(d)
                if loss is not None:
                    a.eval_loss = loss
                a.create_time.FromDatetime(_mtime(d))
                out.append(a)
            if out:
                out[-1].is_latest = True
                evaluated = [a for a in out if a.HasField("eval_loss")]
                (min(evaluated, key=lambda a: a.eval_loss) if evaluated else out[-1]).is_best = True
        for name, kind in (("model", pb.ARTIFACT_KIND_MODEL), ("adapter", pb.ARTIFACT_KIND_ADAPTER),
                           ("runs", pb.ARTIFACT_KIND_LOGS)):
            d = root / name
            if d.is_dir():
                a = pb.Artifact(name="logs" if name == "runs" else name, kind=kind, size_bytes=_size(d))
                a.create_time.FromDatetime(_mtime(d))
                out.append(a)
        return out


def _eval_loss(checkpoint: Path) -> float | None:
    state = checkpoint / "trainer_state.json"
    try:
        history = json.loads(state.read_text()).get("log_history", [])
    except (OSError, ValueError):
        return None
    step = int(checkpoint.name.rsplit("-", 1)[1])
    losses = [h["eval_loss"] for h in history if h.get("step") == step and "eval_loss" in h]
    return float(losses[-1]) if losses else None
