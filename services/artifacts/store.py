"""The artifact store as the artifacts service sees it: what a job produced, by job and name, never
by a client's path. Every file it serves is a regular file reached from the store's root through
folders only (services/common/safefs.py): a link at any level, the job's folder itself included, is
left out and logged, and the file is opened the same way when its bytes are sent."""

from __future__ import annotations

import builtins
import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeAlias

from ftlab.v1 import artifact_service_pb2 as pb
from services.artifacts.digests import DigestCache
from services.artifacts.zipstream import Archive, Digest, Member, is_text, measure
from services.common import safefs, validate
from services.common.checkpoints import best_or_latest, eval_loss
from services.common.errors import FieldViolation, InvalidArgument, NotFound
from services.common.settings import Paths

log = logging.getLogger(__name__)
_JOB_ID = re.compile(r"^[a-f0-9]{1,32}$")
_CHECKPOINT = re.compile(r"^checkpoint-[0-9]{1,12}$")
_CLEAN = re.compile(r"^[A-Za-z0-9_+=-][A-Za-z0-9._+=-]*$")  # one path component, ASCII, not . or ..
_DIRS = {pb.ARTIFACT_KIND_MODEL: "model", pb.ARTIFACT_KIND_ADAPTER: "adapter"}
Picked: TypeAlias = tuple[str, str, Path, safefs.Entry]  # (member name, path in job folder, file, what it was)


def job_id_of(job: str) -> str:
    job_id = job.removeprefix("jobs/")
    if not _JOB_ID.match(job_id):
        log.warning("refused job reference %s", validate.short(job))
        raise InvalidArgument(f"invalid job {validate.short(job)}", violations=[FieldViolation("job", "expected jobs/{id}")])
    return job_id


def _clean(name: str) -> bool:
    return bool(_CLEAN.match(name))


def _skipped(rel: str) -> None:
    log.warning("not serving %s: a link, not a regular file, or an unclean name", validate.short(rel))


def _size(root: Path, path: Path) -> int:
    return sum(e.size for e in safefs.walk_files(root, path, _clean))


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.lstat().st_mtime, tz=timezone.utc)


@dataclass
class Download:
    """A planned download: the archive, its name, and an entity tag that changes with its content."""

    job_id: str
    filename: str
    archive: Archive
    etag: str
    sources: dict[str, tuple[str, safefs.Entry]]  # member name -> (path in the job folder, what it was)


class ArtifactStore:
    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.root = paths.artifacts
        self.digests = DigestCache(paths.artifacts, paths.artifacts / ".cache" / "digests")

    def _plain(self, path: Path) -> bool:
        if safefs.is_plain_dir(self.root, path):
            return True
        if path.is_symlink():
            log.warning("not serving %s: a link", path.relative_to(self.root))
        return False

    def job_dir(self, job: str) -> Path:
        path = self.paths.job_dir(job_id_of(job))
        if not self._plain(path):
            raise NotFound(f"no artifacts for job {validate.short(job)}", reason="JOB_NOT_FOUND")
        return path

    def checkpoints(self, root: Path) -> list[pb.Artifact]:
        out: list[pb.Artifact] = []
        folder = root / "checkpoints"
        names = [n for n in safefs.list_dirs(self.root, folder) if _CHECKPOINT.match(n)]
        for d in sorted((folder / n for n in names), key=lambda p: int(p.name.rsplit("-", 1)[1])):
            a = pb.Artifact(name=d.name, kind=pb.ARTIFACT_KIND_CHECKPOINT, size_bytes=_size(self.root, d),
                            step=int(d.name.rsplit("-", 1)[1]))
            loss = eval_loss(d)
            if loss is not None:
                a.eval_loss = loss
            a.create_time.FromDatetime(_mtime(d))
            out.append(a)
        if out:
            out[-1].is_latest = True
            evaluated = [a for a in out if a.HasField("eval_loss")]
            if evaluated:  # best is by eval loss: with no evaluation no checkpoint is the best
                min(evaluated, key=lambda a: (a.eval_loss, -a.step)).is_best = True
        return out

    def list(self, job: str) -> list[pb.Artifact]:
        root = self.job_dir(job)
        out = self.checkpoints(root)
        for name, kind in (("model", pb.ARTIFACT_KIND_MODEL), ("adapter", pb.ARTIFACT_KIND_ADAPTER),
                           ("runs", pb.ARTIFACT_KIND_LOGS)):
            d = root / name
            if self._plain(d):
                a = pb.Artifact(name="logs" if name == "runs" else name, kind=kind, size_bytes=_size(self.root, d))
                a.create_time.FromDatetime(_mtime(d))
                out.append(a)
        return out

    def checkpoint(self, root: Path, ref: str) -> str:
        """The name of a checkpoint: `best` (by eval loss), `latest`, or its name."""
        found = self.checkpoints(root)
        ref = ref or "latest"
        if ref in ("best", "latest"):
            match = best_or_latest(found, best=ref == "best")
        elif _CHECKPOINT.match(ref):
            match = next((a.name for a in found if a.name == ref), None)
        else:
            log.warning("refused checkpoint reference %s", validate.short(ref))
            raise InvalidArgument(f"invalid checkpoint {validate.short(ref)}",
                                  violations=[FieldViolation("checkpoint", "best, latest or checkpoint-N")])
        if match is None:
            raise NotFound(f"job has no checkpoint {validate.short(ref)}", reason="CHECKPOINT_NOT_FOUND")
        return match

    def plan(self, job: str, kind: pb.ArtifactKind.ValueType, checkpoint: str = "", everything: bool = False,
             generated: dict[str, bytes] | None = None, folder: Path | None = None) -> Download:
        """What a download sends. `generated`: logs made elsewhere (job record, events, metrics), by name
        under logs/. `folder`: a folder of the job to send instead of the kind's own (a merged model)."""
        root = self.job_dir(job)
        job_id = root.name
        picked: list[Picked] = []

        def add(prefix: str, base: Path) -> None:
            rel_base = base.relative_to(root).as_posix()
            picked.extend((f"{prefix}/{e.rel}", f"{rel_base}/{e.rel}", base / e.rel, e)
                          for e in safefs.walk_files(self.root, base, _clean, _skipped))

        def add_logs() -> None:
            if self._plain(root / "runs"):
                add("logs/runs", root / "runs")

        if everything:
            for a in self.checkpoints(root):
                add(f"checkpoints/{a.name}", root / "checkpoints" / a.name)
            for name in ("model", "adapter"):
                if self._plain(root / name):
                    add(name, root / name)
            add_logs()
            what = "all"
        elif kind == pb.ARTIFACT_KIND_CHECKPOINT:
            what = self.checkpoint(root, checkpoint)
            add(what, root / "checkpoints" / what)
        elif kind in _DIRS:
            what = _DIRS[kind] if folder is None else "merged"
            base = folder or root / _DIRS[kind]
            if not self._plain(base):
                other = "adapter" if kind == pb.ARTIFACT_KIND_MODEL else "model"
                raise NotFound(f"job has no {_DIRS[kind]} (it may have produced a {other}, or not finished)",
                               reason="ARTIFACT_NOT_FOUND")
            add(what, base)
        elif kind == pb.ARTIFACT_KIND_LOGS:
            add_logs()
            what = "logs"
        else:
            raise InvalidArgument("say what to download",
                                  violations=[FieldViolation("kind", "checkpoint, model, adapter or logs, or all")])
        with_logs = everything or kind == pb.ARTIFACT_KIND_LOGS
        return self._download(job_id, what, picked, (generated or {}) if with_logs else {})

    def _download(self, job_id: str, what: str, picked: builtins.list[Picked], generated: dict[str, bytes]) -> Download:
        table = self.digests.load(job_id)
        members, sources, tag = [], {}, hashlib.sha256()
        for name, rel, path, entry in picked:
            m = Member(name, entry.size, is_text(name), path=path, root=self.root,
                       digest=self.digests.lookup(table, rel, entry))
            if m.digest is None and m.deflate:  # its compressed size is part of the plan
                m.digest = measure(m)
            members.append(m)
            sources[name] = (rel, entry)
            tag.update(f"{name}\0{entry.size}\0{entry.mtime_ns}\n".encode())
        for name, data in sorted(generated.items()):
            m = Member(f"logs/{name}", len(data), is_text(name), data=data)
            m.digest = measure(m)
            members.append(m)
            tag.update(f"logs/{name}\0{m.digest.sha256}\n".encode())
        if not members:
            raise NotFound(f"nothing to download for {what}", reason="ARTIFACT_NOT_FOUND")
        return Download(job_id, f"{job_id}-{what}.zip", Archive(members), tag.hexdigest()[:32], sources)

    def remember(self, download: Download) -> None:
        """Keep the digests measured while the archive streamed, for the next request."""
        found: dict[str, tuple[safefs.Entry, Digest]] = {}
        for m in download.archive.members:
            if m.name in download.sources and m.digest is not None:
                rel, entry = download.sources[m.name]
                found[rel] = (entry, m.digest)
        self.digests.remember(download.job_id, found)
