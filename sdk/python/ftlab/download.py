"""Downloads an artifact archive to a file: resumable, verified.

Bytes go to `FILE.part`, and `FILE.part.json` remembers what was asked and the archive's etag, so a
download cut short (a dropped connection, a killed client) continues from where it stopped, asking
the server to refuse if the archive has changed since (then it starts over). A dropped stream is
resumed at once, a few times. At the end every file in the archive is checked against the sha256
in the archive's manifest before `FILE` appears.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from ftlab.v1 import artifact_service_pb2 as pb

MANIFEST = "ftlab-manifest.json"
KINDS = {"checkpoint": pb.ARTIFACT_KIND_CHECKPOINT, "model": pb.ARTIFACT_KIND_MODEL,
         "adapter": pb.ARTIFACT_KIND_ADAPTER, "logs": pb.ARTIFACT_KIND_LOGS}
_RESUMABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                        grpc.StatusCode.INTERNAL, grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED})


@dataclass
class Downloaded:
    path: Path
    size_bytes: int
    files: int  # files in the archive checked against the manifest
    resumed_from: int  # bytes that were already on disk when this call began
    etag: str


class VerifyError(Exception):
    """The archive does not match its own manifest."""


def request_for(job: str, what: str = "checkpoint", checkpoint: str = "", merged: bool = False) -> pb.DownloadArtifactRequest:
    if what == "all":
        return pb.DownloadArtifactRequest(job=job, all=True)
    if what not in KINDS:
        raise ValueError(f"what must be one of {', '.join([*KINDS, 'all'])}")
    return pb.DownloadArtifactRequest(job=job, kind=KINDS[what], checkpoint=checkpoint, merged=merged)


def download(stream_call: Callable[..., Iterable[pb.DownloadArtifactResponse]], request: pb.DownloadArtifactRequest,
             path: str | os.PathLike[str], *, metadata: Sequence[tuple[str, str]] = (),
             progress: Callable[[int, int], object] | None = None, attempts: int = 5,
             stall_timeout: float = 600.0) -> Downloaded:
    """Fetch `request`'s archive to `path` through `stream_call` (the DownloadArtifact stub method).
    `progress(done, total)` is called as bytes arrive."""
    path = Path(path)
    part, state_file = path.with_name(path.name + ".part"), path.with_name(path.name + ".part.json")
    asked = json.dumps({"job": request.job, "kind": request.kind, "checkpoint": request.checkpoint,
                        "merged": request.merged, "all": request.all}, sort_keys=True)
    state = _load(state_file)
    if state.get("request") != asked or not part.exists():
        part.unlink(missing_ok=True)
        state = {"request": asked}
    resumed_from = part.stat().st_size if part.exists() else 0
    tries = 0
    while True:
        offset = part.stat().st_size if part.exists() else 0
        r = pb.DownloadArtifactRequest()
        r.CopyFrom(request)
        r.offset, r.if_match = offset, state.get("etag", "") if offset else ""
        try:
            total = _fetch(stream_call(r, metadata=metadata, timeout=stall_timeout), part, state, state_file, progress)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.FAILED_PRECONDITION and offset:  # changed since: start over
                part.unlink(missing_ok=True)
                state = {"request": asked}
                resumed_from = 0
                continue
            tries += 1
            if err.code() not in _RESUMABLE or tries >= attempts:
                _keep_only_what_resumes(part, state_file)
                raise
            time.sleep(min(5.0, 0.2 * 2 ** tries))
            continue
        size = part.stat().st_size
        if size == total:
            break
        if size > total:
            part.unlink()
            raise VerifyError(f"received {size} bytes of a {total}-byte archive")
    files = verify(part)
    part.replace(path)
    state_file.unlink(missing_ok=True)
    return Downloaded(path, total, files, resumed_from, state["etag"])


def _keep_only_what_resumes(part: Path, state_file: Path) -> None:
    """After a download that gave up: bytes received stay for the same download to resume; an empty
    FILE.part (nothing came) and its state are removed."""
    if part.exists() and part.stat().st_size == 0:
        part.unlink()
        state_file.unlink(missing_ok=True)


def _fetch(responses: Iterable[pb.DownloadArtifactResponse], part: Path, state: dict[str, Any], state_file: Path,
           progress: Callable[[int, int], object] | None) -> int:
    total = -1
    with open(part, "ab") as out:
        for message in responses:
            if message.HasField("header"):
                h = message.header
                total = h.total_size_bytes
                if h.offset != out.tell():
                    raise RuntimeError(f"server resumed at {h.offset}, expected {out.tell()}")
                state.update(etag=h.etag, total=total, filename=h.filename)
                _save(state_file, state)
                if progress:
                    progress(out.tell(), total)
                continue
            out.write(message.chunk)
            if progress:
                progress(out.tell(), total)
    return total


def verify(archive: Path) -> int:
    """Check every file against the manifest's sha256 and size; the number of files checked."""
    with zipfile.ZipFile(archive) as z:
        manifest = json.loads(z.read(MANIFEST))
        names = set(z.namelist()) - {MANIFEST}
        listed = {f["name"] for f in manifest["files"]}
        if names != listed:
            raise VerifyError(f"archive and manifest disagree on {sorted(names ^ listed)[:5]}")
        for f in manifest["files"]:
            sha, size = hashlib.sha256(), 0
            with z.open(f["name"]) as member:
                while block := member.read(1 << 20):
                    sha.update(block)
                    size += len(block)
            if size != f["size"] or sha.hexdigest() != f["sha256"]:
                raise VerifyError(f"{f['name']} does not match the manifest")
    return len(listed)


def _load(path: Path) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads(path.read_text())
        return state
    except (OSError, ValueError):
        return {}


def _save(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)
