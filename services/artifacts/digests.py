"""Remembered digests of artifact files (CRC-32, sha256, deflated size), so a second download or a
resumed one does not read again what it does not send. Keyed by the file's path in the store, size
and modification time: a rewritten file is measured afresh. One small JSON file per job."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from services.artifacts.zipstream import Digest
from services.common import safefs

log = logging.getLogger(__name__)


class DigestCache:
    """`folder` lies inside the store's `root`; it and its files are reached through folders only, and
    a table that cannot be written (a full disk) only means the next download measures again."""

    def __init__(self, root: Path, folder: Path) -> None:
        self.root = root
        self.folder = folder
        self._lock = threading.Lock()

    def _file(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def load(self, job_id: str) -> dict[str, list[Any]]:
        try:
            with safefs.open_file(self.root, self._file(job_id)) as f:
                table = json.loads(f.read())
            return table if isinstance(table, dict) else {}
        except (OSError, ValueError):
            return {}

    @staticmethod
    def lookup(table: dict[str, list[Any]], rel: str, entry: safefs.Entry) -> Digest | None:
        found = table.get(rel)
        if isinstance(found, list) and len(found) == 5 and tuple(found[:2]) == (entry.size, entry.mtime_ns):
            return Digest(found[2], found[3], found[4])
        return None

    def remember(self, job_id: str, found: dict[str, tuple[safefs.Entry, Digest]]) -> None:
        """Add digests measured while streaming (rel path -> (what the file was, its digest))."""
        if not found:
            return
        with self._lock:
            table = self.load(job_id)
            for rel, (entry, d) in found.items():
                table[rel] = [entry.size, entry.mtime_ns, d.crc32, d.sha256, d.deflated_size]
            try:
                safefs.write_file(self.root, self._file(job_id), json.dumps(table).encode())
            except OSError as exc:
                log.warning("could not keep the digests of job %s (%s); the next download measures again",
                            job_id, exc.strerror or exc)
