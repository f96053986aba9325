"""Datasets uploaded by clients: received into the store's incoming folder, checked (size limit,
sha256), stored once per content under `datasets/{sha256}/`, then read, validated and normalized into
the shapes TRL trains on (`data.jsonl`), with a report of the format, the rows and every bad row.

A job names an uploaded dataset as `datasets/{sha256}` (or the bare digest). The client's file name
only says the file type; it never becomes a path.

Uploads belong to who sent them. The same content is stored once, but each owner has a record of
their own (`owners/`: their file name and report), only an owner's jobs may read it, and a second
owner's upload goes through every step the first one's did, so the reply says nothing of whether
someone else holds the same file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from io import BufferedWriter
from pathlib import Path
from typing import Any

from ftlab.v1 import artifact_service_pb2 as pb
from ftlab.v1 import dataset_pb2
from services.common import access, safefs
from services.common.datasets import DatasetError, scan
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound, ResourceExhausted
from services.common.settings import Paths

log = logging.getLogger(__name__)
TYPES = (".jsonl", ".json", ".csv", ".parquet")
MAX_BAD_LISTED = 100
_SHA = re.compile(r"^[0-9a-f]{64}$")


def _create(path: Path) -> BufferedWriter:
    """A new file for an upload's bytes, never through a link of that name."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600), "wb")


def _store_link(path: Path) -> FailedPrecondition:
    log.error("not storing an upload through %s: it is a link or not a plain folder", path)
    return FailedPrecondition("the dataset store holds a link where a folder belongs; ask an administrator",
                              reason="STORE_LINK")


def file_type(filename: str) -> str:
    """The upload's file type from its name (`.jsonl`, ...); the name itself is never used as a path."""
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix not in TYPES or "\x00" in filename:
        raise InvalidArgument(f"unsupported dataset file {filename!r}: name a {', '.join(TYPES)} file",
                              violations=[FieldViolation("metadata.filename", f"must end in one of {TYPES}")])
    return suffix


@dataclass
class Upload:
    """One upload in progress: bytes go to a private file under incoming/, hashed as they arrive."""

    store: "DatasetStore"
    owner: str
    filename: str
    suffix: str
    declared_size: int
    declared_sha256: str
    part: Path
    received: int = 0
    _sha: "hashlib._Hash" = field(default_factory=hashlib.sha256)
    _file: BufferedWriter | None = None

    def write(self, chunk: bytes) -> None:
        if self.received + len(chunk) > self.store.max_bytes:
            self.abort()
            raise ResourceExhausted(f"the upload is over the limit of {self.store.max_bytes:,} bytes",
                                    reason="UPLOAD_TOO_LARGE")
        if self._file is None:
            self._file = _create(self.part)
        self._file.write(chunk)
        self._sha.update(chunk)
        self.received += len(chunk)

    def abort(self) -> None:
        """Remove what arrived (a refused, broken or cancelled upload leaves nothing behind)."""
        if self._file is not None:
            self._file.close()
        self.part.unlink(missing_ok=True)

    def finish(self) -> pb.Dataset:
        if self._file is None:
            self._file = _create(self.part)
        self._file.close()
        digest = self._sha.hexdigest()
        try:
            if self.declared_size and self.received != self.declared_size:
                raise InvalidArgument(f"received {self.received:,} bytes, metadata said {self.declared_size:,}",
                                      violations=[FieldViolation("metadata.size_bytes", "does not match the bytes sent")])
            if self.declared_sha256 and self.declared_sha256.lower() != digest:
                raise InvalidArgument("the content's sha256 is not the one the metadata gave",
                                      violations=[FieldViolation("metadata.sha256", f"the content's is {digest}")])
            if self.received == 0:
                raise InvalidArgument("the upload is empty", violations=[FieldViolation("chunk", "no bytes sent")])
            return self.store.keep(self.part, digest, self.suffix, self.filename, self.owner)
        finally:
            self.part.unlink(missing_ok=True)


class DatasetStore:
    def __init__(self, paths: Paths, max_bytes: int) -> None:
        self.paths = paths
        self.root = paths.datasets
        self.incoming = self.root / ".incoming"
        self.max_bytes = max_bytes

    def begin(self, metadata: pb.UploadMetadata, owner: str) -> Upload:
        suffix = file_type(metadata.filename)
        if metadata.size_bytes < 0:
            raise InvalidArgument("size_bytes must not be negative", violations=[FieldViolation("metadata.size_bytes", ">= 0")])
        if metadata.size_bytes > self.max_bytes:
            raise ResourceExhausted(f"{metadata.size_bytes:,} bytes is over the limit of {self.max_bytes:,}",
                                    reason="UPLOAD_TOO_LARGE")
        if metadata.sha256 and not _SHA.match(metadata.sha256.lower()):
            raise InvalidArgument("sha256 must be 64 hex digits", violations=[FieldViolation("metadata.sha256", "hex")])
        try:
            safefs.make_dirs(self.root, self.incoming)
        except safefs.LinkRefused:
            raise _store_link(self.incoming) from None
        return Upload(self, owner, Path(metadata.filename.replace("\\", "/")).name[:200], suffix, metadata.size_bytes,
                      metadata.sha256, self.incoming / f"{uuid.uuid4().hex}.part")

    def keep(self, part: Path, digest: str, suffix: str, filename: str, owner: str) -> pb.Dataset:
        """Read, validate and normalize the content, then store it once under its digest (another
        owner's copy may be there already) with this owner's record; an unusable file is refused and
        not kept. The same work is done whether or not the content was stored before."""
        folder = self.root / digest
        record = access.owner_record(self.paths, digest, owner)
        if safefs.is_plain_file(self.root, record):  # this owner sent it before: their upload, as it was
            return self._dataset(json.loads(safefs.read_file(self.root, record)))
        staging = self.incoming / f"{digest}-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            original = staging / f"original{suffix}"
            shutil.move(str(part), original)
            try:
                found = scan(original)
            except (DatasetError, UnicodeDecodeError, ValueError) as exc:
                raise InvalidArgument(f"the dataset cannot be used: {exc}",
                                      violations=[FieldViolation("chunk", str(exc)[:300])]) from None
            if not found.rows:
                raise InvalidArgument("no row of the dataset can be used",
                                      violations=[FieldViolation("chunk", found.bad[0][1] if found.bad else "no rows")])
            with open(staging / "data.jsonl", "w", encoding="utf-8") as out:
                for row in found.rows:
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
            report = {"name": f"datasets/{digest}", "sha256": digest, "size_bytes": original.stat().st_size,
                      "format": found.format, "rows": len(found.rows), "bad_row_count": len(found.bad),
                      "bad_rows": [{"line": n, "reason": r} for n, r in found.bad[:MAX_BAD_LISTED]]}
            (staging / "report.json").write_text(json.dumps(report, indent=2))
            (staging / "owners").mkdir()
            try:
                staging.rename(folder)
            except OSError:  # stored before (by anyone), or at this moment by another upload
                if not safefs.is_plain_file(self.root, folder / "report.json"):
                    raise _store_link(folder) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        mine = {**report, "filename": filename, "owner": owner,
                "create_time": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
        try:
            safefs.write_file(self.root, record, json.dumps(mine, indent=2).encode())
        except safefs.LinkRefused:
            raise _store_link(record.parent) from None
        log.info("stored dataset %s for %s (%s, %d rows, %d bad)", digest[:12], owner, found.format, len(found.rows),
                 len(found.bad))
        return self._dataset(mine)

    def list(self, owner: str) -> list[pb.Dataset]:
        """`owner`'s uploads, newest first, from their own records (never another owner's)."""
        if not self.root.is_dir():
            return []
        out = []
        for folder in self.root.iterdir():
            if not _SHA.match(folder.name):
                continue
            record = access.owner_record(self.paths, folder.name, owner)
            if not safefs.is_plain_file(self.root, record):
                continue
            try:
                report = json.loads(safefs.read_file(self.root, record))
            except (OSError, ValueError, safefs.LinkRefused):
                log.warning("skipping an unreadable dataset record of %s", folder.name[:12])
                continue
            report.setdefault("create_time", datetime.fromtimestamp(record.stat().st_mtime, timezone.utc).isoformat())
            dataset = self._dataset({**report, "bad_rows": []})
            out.append(dataset)
        return sorted(out, key=lambda d: (d.create_time.seconds, d.create_time.nanos), reverse=True)

    def _mine(self, name: str, owner: str) -> str:
        """The digest of `owner`'s upload `name` ("datasets/{sha256}" or the digest); NotFound for
        anything else, another owner's upload included."""
        digest = name.removeprefix("datasets/").lower()
        if not _SHA.match(digest) or not safefs.is_plain_file(self.root, access.owner_record(self.paths, digest, owner)):
            raise NotFound(f"no upload of yours is named {name!r}", reason="DATASET_NOT_FOUND")
        return digest

    def original(self, name: str, owner: str) -> Path:
        """The file of `owner`'s upload, as it was sent."""
        digest = self._mine(name, owner)
        found = [f for f in (self.root / digest).glob("original.*") if safefs.is_plain_file(self.root, f)]
        if not found:
            raise NotFound(f"upload {name!r} has no original file left", reason="DATASET_NOT_FOUND")
        return found[0]

    def delete(self, name: str, owner: str) -> str:
        """Forget `owner`'s upload; the content goes once no owner has it."""
        digest = self._mine(name, owner)
        access.owner_record(self.paths, digest, owner).unlink()
        owners = self.root / digest / "owners"
        if not any(owners.iterdir()):
            shutil.rmtree(self.root / digest, ignore_errors=True)
        log.info("deleted dataset %s of %s", digest[:12], owner)
        return f"datasets/{digest}"

    @staticmethod
    def _dataset(report: dict[str, Any]) -> pb.Dataset:
        d = pb.Dataset(name=report["name"], sha256=report["sha256"], size_bytes=report["size_bytes"],
                       filename=report["filename"], format=report["format"], rows=report["rows"],
                       bad_row_count=report.get("bad_row_count", len(report["bad_rows"])))
        d.bad_rows.extend(dataset_pb2.BadRow(line=b["line"], reason=b["reason"]) for b in report["bad_rows"])
        if report.get("create_time"):
            d.create_time.FromDatetime(datetime.fromisoformat(report["create_time"]))
        return d
