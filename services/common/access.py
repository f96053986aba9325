"""Which files a job may name, for whom: the one rule every service applies before it reads a path
a user wrote (a base model, a dataset), so that no user reads the store or another user's files.

A job may name:
- a hub id (`Qwen/Qwen2.5-0.5B`), loaded from the Hugging Face cache or hub;
- an upload of its owner's, by name (`datasets/{sha256}`);
- a dataset file by a relative path, under the server's datasets folder (not inside an upload);
- an absolute path under a root the administrator allows: FTLAB_MODEL_ROOTS for models and
  FTLAB_DATA_ROOTS for data (each a list separated by the OS path separator). Unset, a server without
  auth (one user's machine) allows any path, and a server with auth allows FTLAB_HOME/models and
  FTLAB_HOME/datasets.
Never the store itself (job folders, uploads by path, the database), whatever the roots say: a job
reaches another job's weights only as that job's own retry does, by job and checkpoint name.
Paths are refused by their text and their resolved location, before anything is opened, so a
refusal says nothing about what exists there. (One refusal looks first, and only inside the folders
the caller may read: a path holding $NAME or a blank at an end, refused when nothing is there as written.)
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from services.common import safefs, settings
from services.common.errors import FieldViolation, InvalidArgument
from services.common.settings import Paths

if TYPE_CHECKING:
    from ftlab.v1 import config_pb2

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_HUB_PAGE = re.compile(r"^https?://(?:www\.)?(?:huggingface\.co|hf\.co)/(?P<id>[^/?#]+/[^/?#]+)")
# $NAME, ${NAME}, %NAME% (not a URL's %2F escape)
_VARIABLE = re.compile(r"\$\{[A-Za-z_]\w*\}|\$[A-Za-z_]\w*|%(?![0-9A-Fa-f]{2}%)[A-Za-z_]\w*%")
_SPACES = {" ": "a space", "\n": "a newline", "\t": "a tab", "\r": "a carriage return"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")


@dataclass(frozen=True)
class Roots:
    """Where absolute paths may point: model roots and data roots (resolved)."""

    models: tuple[Path, ...]
    data: tuple[Path, ...]

    @classmethod
    def from_env(cls, paths: Paths, auth_on: bool) -> "Roots":
        def roots(variable: str, default: Path) -> tuple[Path, ...]:
            text = os.environ.get(variable, "")
            if text:
                return tuple(Path(p).expanduser().resolve() for p in text.split(os.pathsep) if p)
            return (default.resolve(),) if auth_on else (Path("/"),)

        return cls(roots("FTLAB_MODEL_ROOTS", paths.root / "models"), roots("FTLAB_DATA_ROOTS", paths.datasets))


def _refuse(field: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"{field}: {why}", violations=[FieldViolation(field, why)], reason="PATH_NOT_ALLOWED")


def _plain(value: str, field: str) -> PurePosixPath:
    """`value` as a path that has no `..`, no NUL and no empty text; refused otherwise."""
    if not value.strip() or "\x00" in value:
        raise _refuse(field, "required")
    path = PurePosixPath(value)
    if ".." in path.parts:
        raise _refuse(field, "a path must not contain `..`")
    return path


def _as_written(value: str, field: str, where: Path | None) -> None:
    """Refuse a path that shows why it names nothing: $NAME, ${NAME} or %NAME% (a job file is not read by
    a shell, so nothing expanded it), or a space or newline at an end. `where` is the allowed place it
    names, taken as it is where something is there; None for a value that is no path on the server."""
    if where is not None and os.path.lexists(where):
        return
    variable = _VARIABLE.search(value)
    if variable:
        raise _refuse(field, f"holds {variable[0]}, an environment variable that nothing expanded (a job file is not "
                             "read by a shell): write the path it stands for")
    if value != value.strip():
        end, char = ("starts", value[0]) if value[0].isspace() else ("ends", value[-1])
        raise _refuse(field, f"{end} with {_SPACES.get(char, 'a blank')} that is not part of the name: "
                             f"{value.strip()!r} is what to give")


def _private(paths: Paths) -> list[Path]:
    """What no job may name by path: the artifact store, uploads, the incoming folder, the database."""
    root = paths.root.resolve()
    return [root / "artifacts", root / "datasets" / ".incoming", root / "ftlab.db"]


def _inside(path: Path, base: Path) -> bool:
    return path == base or path.is_relative_to(base)


def _check_absolute(value: str, field: str, allowed: tuple[Path, ...], paths: Paths, what: str) -> Path:
    resolved = Path(os.path.realpath(value))  # links resolved: a link inside a root may not lead outside it
    datasets = paths.datasets.resolve()
    in_upload = _inside(resolved, datasets) and len(resolved.relative_to(datasets).parts) > 0 and \
        _SHA256.match(resolved.relative_to(datasets).parts[0])
    if any(_inside(resolved, p) for p in _private(paths)) or resolved.name.startswith("ftlab.db") or in_upload:
        raise _refuse(field, "inside FineTune Lab's own store; name another job's output by job and checkpoint "
                             "(ftlab retry), and an upload as datasets/{sha256}")
    if not any(_inside(resolved, root) for root in allowed):
        raise _refuse(field, f"not under a folder this server lets jobs read {what} from (ask the administrator "
                             f"to add it to {'FTLAB_MODEL_ROOTS' if what == 'models' else 'FTLAB_DATA_ROOTS'})")
    return resolved


def check_model(value: str, field: str, paths: Paths, roots: Roots) -> str:
    """A base model a job may load: a hub id as is, or an allowed absolute path (resolved)."""
    path = _plain(value, field)
    if path.is_absolute():
        resolved = _check_absolute(value, field, roots.models, paths, "models")
        _as_written(value, field, Path(value))
        return str(resolved)
    _as_written(value, field, None)
    parts = value.split("/")
    store_like = parts[0] in ("jobs", "datasets", "artifacts") or any(_SHA256.match(p) for p in parts)
    if _HUB_ID.match(value) and not value.startswith(".") and not store_like:
        return value
    if store_like:
        raise _refuse(field, "names FineTune Lab's own store; a base model is a hub id or an absolute path")
    if _URL.match(value):  # a model page's address, copied from the browser, or a file:// URL
        page = _HUB_PAGE.match(value)
        hint = f" (for that page: {page['id']})" if page and _HUB_ID.match(page["id"]) else \
            f" (here: {value.removeprefix('file://')})" if value.startswith("file:///") else ""
        raise _refuse(field, f"an address (URL), not a model: give a hub id, org/name, or an absolute path on the "
                             f"server{hint}")
    hub_id, _, revision = value.partition("@")
    if revision and "/" in hub_id and _HUB_ID.match(hub_id) and re.fullmatch(r"[\w.-]+", revision):
        raise _refuse(field, f"a hub id with @{revision}: give the hub id alone ({hub_id}); the trainer loads "
                             "the revision its cache or the hub holds")
    raise _refuse(field, "a hub id (org/name) or an absolute path on the server; a relative path means nothing "
                         "to the server (the CLI and SDK make it absolute)")


def owner_key(user: str) -> str:
    """The file name under an upload's `owners/` that says `user` uploaded it (any user name is safe)."""
    import hashlib

    return hashlib.sha256(user.encode()).hexdigest()[:32]


def owner_record(paths: Paths, digest: str, user: str) -> Path:
    return paths.datasets / digest / "owners" / f"{owner_key(user)}.json"


def owns_upload(paths: Paths, digest: str, user: str) -> bool:
    return safefs.is_plain_file(paths.datasets, owner_record(paths, digest, user))


def check_dataset(value: str, field: str, paths: Paths, roots: Roots, owner: str | None) -> Path:
    """The file a job may read for a dataset field: an upload of `owner`'s by name (any owner's when
    `owner` is None: an admin, or a service acting for a job already checked), a relative path under
    the datasets folder outside every upload, or an allowed absolute path."""
    path = _plain(value, field)
    digest = value.removeprefix("datasets/")
    if _SHA256.match(digest):
        if owner is not None and not owns_upload(paths, digest, owner):
            raise _refuse(field, "no upload of yours has that name (upload the file: ftlab upload)")
        data = paths.datasets / digest / "data.jsonl"
        if data.parent.exists() and not safefs.is_plain_file(paths.datasets, data):
            raise _refuse(field, "that upload is damaged (not a plain file in the store); upload it again")
        return data
    if path.is_absolute():
        resolved = _check_absolute(value, field, roots.data, paths, "data")
        _as_written(value, field, Path(value))
        return _regular(resolved, field)
    first = path.parts[0] if path.parts else ""
    if first.startswith(".") or _SHA256.match(first):
        raise _refuse(field, "inside FineTune Lab's own store; name an upload as datasets/{sha256}")
    resolved = Path(os.path.realpath(paths.datasets / path))
    if not _inside(resolved, paths.datasets.resolve()):
        raise _refuse(field, "a relative path must stay inside the server's datasets folder")
    _as_written(value, field, paths.datasets / path)
    return _regular(_check_absolute(str(resolved), field, (paths.datasets.resolve(),), paths, "data"), field)


def _regular(path: Path, field: str) -> Path:
    """`path` unless it is a named pipe, a device or a socket: reading one blocks for ever or never ends."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return path  # not there (yet): said where it is read
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise _refuse(field, "a named pipe, a device or a socket, not a file: give a dataset file")
    return path


@dataclass
class Policy:
    """The rule as one service applies it: its paths and roots."""

    paths: Paths
    roots: Roots

    @classmethod
    def current(cls) -> "Policy":
        from services.common import auth

        paths = settings.paths()
        return cls(paths, Roots.from_env(paths, auth.tokens().enabled))

    def dataset(self, value: str, field: str, owner: str | None) -> Path:
        return check_dataset(value, field, self.paths, self.roots, owner)

    def model(self, value: str, field: str) -> str:
        return check_model(value, field, self.paths, self.roots)

    def config(self, config: config_pb2.TrainingConfig, owner: str | None, prefix: str = "config.") -> None:
        """Raise InvalidArgument naming every file field of a TrainingConfig that `owner` may not read."""
        violations: list[FieldViolation] = []
        checks: list[Callable[[], object]] = [lambda: self.model(config.base_model, prefix + "base_model")]
        for name in ("uri", "eval_uri"):
            value: str = getattr(config.dataset, name)
            if value or name == "uri":
                checks.append(functools.partial(self.dataset, value, f"{prefix}dataset.{name}", owner))
        if config.samples.prompts_uri:  # a file of prompts is read like a dataset
            checks.append(functools.partial(self.dataset, config.samples.prompts_uri, f"{prefix}samples.prompts_uri",
                                            owner))
        for check in checks:
            try:
                check()
            except InvalidArgument as exc:
                violations.extend(exc.violations)
        if violations:
            raise InvalidArgument(f"{violations[0].field}: {violations[0].description}", violations=violations,
                                  reason="PATH_NOT_ALLOWED")
