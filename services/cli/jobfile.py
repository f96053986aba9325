"""Job files as `ftlab submit` and `ftlab analyze --config` read them: a YAML or JSON mapping of
TrainingConfig fields. A file that does not parse, holds something else, or names a bad field or
value is refused in one line naming the file, the line (where it is known) and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftlab.v1 import config_pb2


class JobFileError(ValueError):
    """A job file that cannot be used: the message names the file, and the line where it knows it."""


def load(path: str) -> dict[str, Any]:
    """The mapping a YAML or JSON job file holds; a file that does not parse, or holds something
    else than a mapping, is refused naming the file and the line."""
    try:
        text = Path(path).read_text()
    except UnicodeDecodeError:
        raise JobFileError(f"{path}: not a text file") from None
    if path.endswith((".yaml", ".yml")):
        import yaml

        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise JobFileError(f"{path}{where}: not valid YAML: {problem}") from None
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise JobFileError(f"{path} line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise JobFileError(f"{path}: a job file holds a mapping of fields (base_model: ..., dataset: ...), "
                           f"not a {type(values).__name__}")
    return values


def field_line(path: str, field: str) -> str:
    """' line N' where `field` (dotted) is written in the YAML file `path`, or ''."""
    if not path.endswith((".yaml", ".yml")):
        return ""
    import yaml

    try:
        node = yaml.compose(Path(path).read_text())
    except yaml.YAMLError:
        return ""
    for part in field.split("."):
        if not isinstance(node, yaml.MappingNode):
            return ""
        found = next(((k, v) for k, v in node.value if getattr(k, "value", None) == part), None)
        if found is None:
            return ""
        key, node = found
    return f" line {key.start_mark.line + 1}"


def config_of_file(path: str, values: dict[str, Any]) -> config_pb2.TrainingConfig:
    from ftlab import config_from_dict
    from ftlab.config import ConfigError

    try:
        return config_from_dict(values)
    except ConfigError as exc:
        raise JobFileError(f"{path}{field_line(path, exc.field)}: {exc}") from None
