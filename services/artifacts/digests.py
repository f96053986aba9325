"""Remembered digests of artifact files (CRC-32, sha256, deflated size), so a second download or a
resumed one does not read again what it does not send. Keyed by the file's path in the store, size
and modification time: a rewritten file is measured afresh. One small JSON file per job."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from services.artifacts.zipstream import Digest


class DigestCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    def _file(self, job_id: str) -> Path:
        return self.root / f"{job_id}.json"

    def load(self, job_id: str) -> dict[str, list]:
        try:
            return json.loads(self._file(job_id).read_text())
        except (OSError, ValueError):
            return {}

    @staticmethod
    def key(path: Path) -> tuple[int, int]:
        st = path.stat()
        return st.st_size, st.st_mtime_ns

    def lookup(self, table: dict[str, list], rel: str, path: Path) -> Digest | None:
        entry = table.get(rel)
        if entry and tuple(entry[:2]) == self.key(path):
            return Digest(entry[2], entry[3], entry[4])
        return None

    def remember(self, job_id: str, found: dict[str, tuple[Path, Digest]]) -> None:
        """Add digests measured while streaming (rel path -> (file, digest))."""
        if not found:
            return
        with self._lock:
            table = self.load(job_id)
            for rel, (path, d) in found.items():
                try:
                    table[rel] = [*self.key(path), d.crc32, d.sha256, d.deflated_size]
                except OSError:
                    continue
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self._file(job_id).with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
            tmp.write_text(json.dumps(table))
            tmp.replace(self._file(job_id))
