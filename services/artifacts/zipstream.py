"""A zip archive produced while it is sent: constant memory, no temporary file, deterministic.

The archive's every byte is fixed by the plan (member names, sizes, contents), never by when it is
made: fixed timestamps, sorted members, data descriptors after every member (so CRCs need not be
known before its bytes are sent), and the manifest (each file's size and sha256) as the last member,
whose length is known up front because sha256 digests are fixed-width. So the total size is known
before the first byte, and asking again from an offset continues a broken download exactly.

Weights are stored (they barely compress); text is deflated, its compressed size measured at
planning time (text is small) and produced again identically while streaming. ZIP64 records are
used for a member, its offset or the directory only where a 32-bit field would overflow.
"""

from __future__ import annotations

import hashlib
import json
import queue
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from services.common import safefs

CHUNK = 1 << 20
MANIFEST = "ftlab-manifest.json"
_MAX32 = 0xFFFFFFFF
_DOS_DATE, _DOS_TIME = (0 << 9) | (1 << 5) | 1, 0  # 1980-01-01 00:00:00, the zip epoch
_FLAGS = 0x08 | 0x800  # data descriptor follows the data; names are UTF-8
_TEXT_SUFFIXES = {".json", ".jsonl", ".txt", ".log", ".md", ".jinja", ".csv", ".yaml", ".yml", ".py", ".model",
                  ".tiktoken", ".merges", ".vocab"}


class ArtifactChanged(Exception):
    """A file's size changed between planning the archive and sending it."""


@dataclass
class Digest:
    crc32: int
    sha256: str
    deflated_size: int = -1  # bytes after raw deflate (text members), -1 when not measured


@dataclass
class Member:
    """One file of the archive: from disk (`path`) or generated (`data`)."""

    name: str
    size: int
    deflate: bool
    path: Path | None = None
    root: Path | None = None  # set: `path` is opened from it through folders only (services/common/safefs.py)
    data: bytes | None = None
    digest: Digest | None = None  # known already (cache) or once its bytes have been read
    offset: int = 0  # of its local header, set by Archive

    def known_digest(self) -> Digest:
        """Its digest, where the plan has it (a deflated member's) or its bytes were read already."""
        assert self.digest is not None
        return self.digest

    @property
    def stored_size(self) -> int:
        """Bytes of this member inside the archive."""
        return self.known_digest().deflated_size if self.deflate else self.size

    @property
    def zip64(self) -> bool:
        return max(self.size, self.stored_size) >= _MAX32

    def local_header(self) -> bytes:
        name = self.name.encode()
        extra = struct.pack("<HHQQ", 1, 16, 0, 0) if self.zip64 else b""
        size32 = _MAX32 if self.zip64 else 0
        return struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if self.zip64 else 20, _FLAGS, 8 if self.deflate else 0,
                           _DOS_TIME, _DOS_DATE, 0, size32, size32, len(name), len(extra)) + name + extra

    def descriptor(self) -> bytes:
        if self.zip64:
            return struct.pack("<IIQQ", 0x08074B50, self.known_digest().crc32, self.stored_size, self.size)
        return struct.pack("<IIII", 0x08074B50, self.known_digest().crc32, self.stored_size, self.size)

    def descriptor_size(self) -> int:
        return 24 if self.zip64 else 16

    def central_header(self) -> bytes:
        name = self.name.encode()
        sizes = [(self.size, "usize"), (self.stored_size, "csize"), (self.offset, "offset")]
        big = [v for v, _ in sizes if v >= _MAX32]
        extra = struct.pack("<HH", 1, 8 * len(big)) + b"".join(struct.pack("<Q", v) for v in big) if big else b""
        usize, csize, offset = (min(v, _MAX32) for v, _ in sizes)
        return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | 45, 45 if (self.zip64 or big) else 20,
                           _FLAGS, 8 if self.deflate else 0, _DOS_TIME, _DOS_DATE, self.known_digest().crc32, csize,
                           usize, len(name), len(extra), 0, 0, 0, 0o100644 << 16, offset) + name + extra

    def central_size(self) -> int:
        big = sum(v >= _MAX32 for v in (self.size, self.stored_size, self.offset))
        return 46 + len(self.name.encode()) + (4 + 8 * big if big else 0)


def is_text(name: str) -> bool:
    return Path(name).suffix.lower() in _TEXT_SUFFIXES


def measure(m: "Member") -> Digest:
    """CRC-32, sha256 and (for text) deflated size of a member's bytes, read once."""
    crc, sha, deflated = 0, hashlib.sha256(), 0
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15) if m.deflate else None
    for chunk in read_member(m):
        crc = zlib.crc32(chunk, crc)
        sha.update(chunk)
        if compressor is not None:
            deflated += len(compressor.compress(chunk))
    if compressor is not None:
        deflated += len(compressor.flush())
    return Digest(crc, sha.hexdigest(), deflated if m.deflate else -1)


def manifest_bytes(files: list[tuple[str, int, str]]) -> bytes:
    """The manifest: one line per file, so its length depends only on names and sizes."""
    lines = [json.dumps({"name": n, "size": s, "sha256": h}, sort_keys=True) for n, s, h in files]
    return ('{"format": "ftlab-manifest/1", "files": [\n' + ",\n".join(lines) + "\n]}\n").encode()


@dataclass
class Archive:
    """A planned archive. `members` need digests for deflated ones (their size depends on it)."""

    members: list[Member]
    total_size: int = 0
    _manifest: Member = field(init=False)

    def __post_init__(self) -> None:
        self.members.sort(key=lambda m: m.name)
        names = [m.name for m in self.members]
        if len(set(names)) != len(names) or MANIFEST in names:
            raise ValueError("duplicate member names")
        length = len(manifest_bytes([(m.name, m.size, "0" * 64) for m in self.members]))
        self._manifest = Member(MANIFEST, length, deflate=False, digest=Digest(0, "", -1))
        pos = 0
        for m in [*self.members, self._manifest]:
            m.offset = pos
            pos += len(m.local_header()) + m.stored_size + m.descriptor_size()
        self._cd_offset = pos
        self._cd_size = sum(m.central_size() for m in [*self.members, self._manifest])
        self.total_size = pos + self._cd_size + len(self._end(0, 0, 0))

    def stream(self, offset: int = 0) -> Iterator[bytes]:
        """The archive's bytes from `offset` on. Members wholly before `offset` are not read when their
        digest is known; otherwise they are read (for their CRC and sha256) but not sent."""
        if not 0 <= offset <= self.total_size:
            raise ValueError(f"offset {offset} outside the archive (0..{self.total_size})")
        pos = 0

        def emit(b: bytes) -> Iterator[bytes]:
            nonlocal pos
            start, pos = pos, pos + len(b)
            if pos > offset:
                yield b[max(0, offset - start):] if start < offset else b

        for m in self.members:
            yield from emit(m.local_header())
            end = pos + m.stored_size
            if end <= offset and m.digest is not None:
                pos = end
            else:
                yield from self._data(m, pos, offset)
                pos = end
            yield from emit(m.descriptor())
        body = manifest_bytes([(m.name, m.size, m.known_digest().sha256) for m in self.members])
        assert len(body) == self._manifest.size
        self._manifest.data, self._manifest.digest = body, Digest(zlib.crc32(body), hashlib.sha256(body).hexdigest())
        yield from emit(self._manifest.local_header())
        yield from emit(body)
        yield from emit(self._manifest.descriptor())
        directory = b"".join(m.central_header() for m in [*self.members, self._manifest])
        yield from emit(directory)
        yield from emit(self._end(len(self.members) + 1, self._cd_size, self._cd_offset))
        assert pos == self.total_size

    def _data(self, m: Member, start: int, offset: int) -> Iterator[bytes]:
        """A member's stored bytes, those at or after `offset` sent; its digest computed on the way."""
        read, pos = 0, start
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15) if m.deflate else None
        hasher = _Hasher() if m.digest is None else None
        try:
            for chunk in read_member(m):
                read += len(chunk)
                if hasher is not None:
                    hasher.feed(chunk)
                out = compressor.compress(chunk) if compressor is not None else chunk
                if out:
                    if pos + len(out) > offset:
                        yield out[offset - pos:] if pos < offset else out
                    pos += len(out)
            if compressor is not None:
                out = compressor.flush()
                if pos + len(out) > offset:
                    yield out[offset - pos:] if pos < offset else out
                pos += len(out)
            digest = hasher.result() if hasher is not None else None
        finally:
            if hasher is not None:
                hasher.stop()  # an abandoned download: let the thread end
        if read != m.size or pos - start != m.stored_size:
            raise ArtifactChanged(f"{m.name} changed while being sent ({read} bytes, planned {m.size})")
        if digest is not None:
            m.digest = digest

    def _end(self, entries: int, cd_size: int, cd_offset: int) -> bytes:
        n = len(self.members) + 1
        zip64 = n >= 0xFFFF or self._cd_size >= _MAX32 or self._cd_offset >= _MAX32
        out = b""
        if zip64:
            zip64_offset = self._cd_offset + self._cd_size
            out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, (3 << 8) | 45, 45, 0, 0, entries, entries, cd_size,
                               cd_offset)
            out += struct.pack("<IIQI", 0x07064B50, 0, zip64_offset, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(entries, 0xFFFF), min(entries, 0xFFFF),
                           min(cd_size, _MAX32), min(cd_offset, _MAX32), 0)
        return out


class _Hasher:
    """CRC-32 and sha256 of a byte stream, computed in a thread of its own while the bytes are sent
    (both release the GIL on large buffers); at most `depth` chunks wait for it."""

    def __init__(self, depth: int = 8) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(depth)
        self._crc, self._sha = 0, hashlib.sha256()
        self._thread = threading.Thread(target=self._run, name="zip-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._crc = zlib.crc32(chunk, self._crc)
            self._sha.update(chunk)

    def feed(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def result(self) -> Digest:
        self._queue.put(None)
        self._thread.join()
        return Digest(self._crc, self._sha.hexdigest(), -1)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)


def read_member(m: Member) -> Iterator[bytes]:
    if m.data is not None:
        yield m.data
        return
    assert m.path is not None  # a member is generated (`data`) or from disk (`path`)
    with (safefs.open_file(m.root, m.path) if m.root is not None else open(m.path, "rb")) as f:
        while chunk := f.read(CHUNK):
            yield chunk
