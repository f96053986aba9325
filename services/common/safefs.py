"""Files inside the store, reached without following a link at any level.

A path is walked one component at a time from a trusted folder (the store's root), each component
opened relative to the one before with O_NOFOLLOW (openat-style), so a link planted anywhere below
the root, whether a job's `runs/`, a checkpoint, an upload's `owners/` or a merge's `merged/`, is
refused instead of followed out of the store. Writes go to a new file in the folder already
opened and are renamed into place within it.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LinkRefused(OSError):
    """A component of the path is a link (or not what it must be)."""


def parts_of(root: Path, path: Path) -> list[str]:
    """`path`'s components below `root` (it must be inside it, lexically)."""
    rel = Path(os.path.normpath(path)).relative_to(Path(os.path.normpath(root)))
    if any(p in ("..", ".") for p in rel.parts):
        raise LinkRefused(f"not a plain path below the store: {rel}")
    return list(rel.parts)


@contextmanager
def opened_dir(root: Path, parts: list[str], create: bool = False) -> Iterator[int]:
    """A descriptor of root/parts..., no component followed if it is a link; made when `create`."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the root itself is the administrator's
    try:
        for part in parts:
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            try:
                child = os.open(part, _DIR, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise LinkRefused(f"{part}: a link or not a folder") from None
                raise
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def is_plain_dir(root: Path, path: Path) -> bool:
    """Whether `path` is a folder below `root` reached through folders only (no link anywhere)."""
    try:
        with opened_dir(root, parts_of(root, path)):
            return True
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class Entry:
    rel: str  # below the folder walked, "/"-separated
    size: int
    mtime_ns: int


def walk_files(root: Path, folder: Path, clean: Callable[[str], bool] | None = None,
               skipped: Callable[[str], object] | None = None) -> list[Entry]:
    """Every regular file below `folder` (inside `root`), sorted, reached through folders only: links
    and other odd entries, and names `clean` refuses, are left out and told to `skipped(rel)`."""
    out: list[Entry] = []
    try:
        with opened_dir(root, parts_of(root, folder)) as fd:
            _walk(fd, "", out, clean, skipped or (lambda rel: None))
    except (LinkRefused, FileNotFoundError, NotADirectoryError):
        return []
    return sorted(out, key=lambda e: e.rel)


def _walk(fd: int, prefix: str, out: list[Entry], clean: Callable[[str], bool] | None,
          skipped: Callable[[str], object]) -> None:
    for entry in sorted(os.scandir(fd), key=lambda e: e.name):
        if clean is not None and not clean(entry.name):
            skipped(prefix + entry.name)
            continue
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISREG(st.st_mode):
            out.append(Entry(prefix + entry.name, st.st_size, st.st_mtime_ns))
        elif stat.S_ISDIR(st.st_mode):
            try:
                child = os.open(entry.name, _DIR, dir_fd=fd)
            except OSError:
                skipped(prefix + entry.name)
                continue
            try:
                _walk(child, f"{prefix}{entry.name}/", out, clean, skipped)
            finally:
                os.close(child)
        else:
            skipped(prefix + entry.name)


def is_plain_file(root: Path, path: Path) -> bool:
    """Whether `path` is a regular file below `root` reached through folders only."""
    try:
        with open_file(root, path):
            return True
    except (OSError, ValueError):
        return False


def read_file(root: Path, path: Path) -> bytes:
    with open_file(root, path) as f:
        return f.read()


def list_dirs(root: Path, folder: Path) -> list[str]:
    """Names of the folders (not links) directly in `folder`, reached through folders only."""
    try:
        with opened_dir(root, parts_of(root, folder)) as fd:
            return sorted(e.name for e in os.scandir(fd) if e.is_dir(follow_symlinks=False))
    except (LinkRefused, FileNotFoundError, NotADirectoryError):
        return []


def open_file(root: Path, path: Path) -> io.BufferedReader:
    """`path` (below `root`) opened for reading, as a regular file reached through folders only."""
    parts = parts_of(root, path)
    with opened_dir(root, parts[:-1]) as fd:
        try:
            file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise LinkRefused(f"{parts[-1]}: a link") from None
            raise
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise LinkRefused(f"{parts[-1]}: not a regular file")
    return os.fdopen(file_fd, "rb")


def write_file(root: Path, path: Path, data: bytes) -> None:
    """Write `path` (below `root`) whole: its folders made as needed, none of them a link, the file
    written beside its final name and renamed into place."""
    parts = parts_of(root, path)
    with opened_dir(root, parts[:-1], create=True) as fd:
        tmp = f".{parts[-1]}.{uuid.uuid4().hex[:8]}.tmp"
        file_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=fd)
        try:
            with os.fdopen(file_fd, "wb") as f:
                f.write(data)
            os.rename(tmp, parts[-1], src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=fd)
            except OSError:
                pass
            raise


def make_dirs(root: Path, path: Path) -> None:
    """Make `path`'s folders below `root`, refusing any component that is a link."""
    with opened_dir(root, parts_of(root, path), create=True):
        pass
