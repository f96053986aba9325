"""Build a TrainingConfig from friendly values: dicts from JSON/YAML files and `key=value` strings.

Enums take their short names ("lora", "sft", "bf16", "cosine"); nested fields use dots ("lora.rank").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeAlias

from google.protobuf import descriptor, json_format
from google.protobuf.message import Message

from ftlab.v1 import config_pb2

if TYPE_CHECKING:
    from google._upb._message import FieldDescriptor as UpbFieldDescriptor

FD = descriptor.FieldDescriptor
# a field's descriptor: protobuf's pure-Python class, or its C (upb) one where that is the implementation
Field: TypeAlias = "descriptor.FieldDescriptor | UpbFieldDescriptor"


class ConfigError(ValueError):
    """A config value that cannot be set; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _enum_value(field: Field, value: Any, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().upper().replace("-", "_")
    enum = field.enum_type
    assert enum is not None  # an enum field's type
    prefix = enum.values[0].name.removesuffix("UNSPECIFIED")
    for candidate in (text, prefix + text):
        if candidate in enum.values_by_name:
            return enum.values_by_name[candidate].number
    names = [v.name.removeprefix(prefix).lower() for v in enum.values if not v.name.endswith("UNSPECIFIED")]
    raise ConfigError(path, f"unknown value {value!r};{_did_you_mean(str(value).strip().lower(), names)} "
                            f"one of {', '.join(names)}")


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" did you mean {close[0]!r}?" if close else ""


def _scalar(field: Field, value: Any, path: str) -> Any:
    try:
        if field.type == FD.TYPE_ENUM:
            return _enum_value(field, value, path)
        if field.type == FD.TYPE_BOOL:
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return low in ("true", "1", "yes")
            return bool(value)
        if field.type in (FD.TYPE_INT32, FD.TYPE_INT64, FD.TYPE_UINT32, FD.TYPE_UINT64):
            number = float(value)
            if number != int(number):
                raise ValueError(value)
            return int(number)
        if field.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
            return float(value)
        return str(value)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(path, f"cannot use {value!r} as {field.name}") from exc


def _set(message: Message, key: str, value: Any, prefix: str = "") -> None:
    path = prefix + key
    field = message.DESCRIPTOR.fields_by_name.get(key)
    if field is None:
        hint = _did_you_mean(key, message.DESCRIPTOR.fields_by_name)
        raise ConfigError(path, "no such field" + (f" ({hint.strip()})" if hint else ""))
    if value is None:  # null: back to unset (the template's value)
        message.ClearField(key)
        return
    entry = field.message_type if field.type == FD.TYPE_MESSAGE else None
    if entry is not None and entry.GetOptions().map_entry:  # e.g. dataset.columns
        if not isinstance(value, dict) or not all(isinstance(v, (str, int, float)) for v in value.values()):
            raise ConfigError(path, "expected a mapping of names, e.g. {prompt: question, completion: answer}")
        target = getattr(message, key)
        target.clear()
        target.update({str(k): str(v) for k, v in value.items()})
        return
    if field.type == FD.TYPE_MESSAGE:
        if not isinstance(value, dict):
            raise ConfigError(path, "expected a mapping")
        for k, v in value.items():
            _set(getattr(message, key), k, v, path + ".")
        return
    if field.is_repeated:
        items = value.split(",") if isinstance(value, str) else list(value)
        target = getattr(message, key)
        del target[:]
        target.extend(_scalar(field, v.strip() if isinstance(v, str) else v, path) for v in items)
        return
    setattr(message, key, _scalar(field, value, path))


def config_from_dict(values: dict[str, Any]) -> config_pb2.TrainingConfig:
    """A TrainingConfig with exactly the given fields set."""
    config = config_pb2.TrainingConfig()
    for key, value in (values or {}).items():
        _set(config, key, value)
    return config


def parse_value(text: str, key: str = "value") -> Any:
    """A `--set` value as the user means it: `[a, b]` (or JSON `["a", "b"]`) a list, `{...}` a JSON
    mapping, `null` or `~` nothing (the field is cleared); anything else stays text, which the field's
    type then reads (numbers, booleans, enum names, "a,b" lists)."""
    import json

    value = text.strip()
    if value in ("null", "~"):
        return None
    if value.startswith("[") and value.endswith("]"):
        try:
            items = json.loads(value)
        except ValueError:
            inner = value[1:-1].strip()
            items = [item.strip().strip("'\"") for item in inner.split(",")] if inner else []
        if not isinstance(items, list):
            raise ConfigError(key, f"cannot read {text!r} as a list")
        return items
    if value.startswith("{") and value.endswith("}"):
        try:
            mapping = json.loads(value)
        except ValueError as exc:
            mapping = _yaml_flow(value)  # {prompt: question, completion: answer}, as a job file writes it
            if mapping is None:
                raise ConfigError(key, f"cannot read {text!r} as a mapping: {exc}") from None
        if not isinstance(mapping, dict):
            raise ConfigError(key, f"cannot read {text!r} as a mapping")
        return mapping
    return text


def _yaml_flow(text: str) -> dict[Any, Any] | None:
    """A YAML flow mapping, where PyYAML is installed (the CLI has it; the SDK alone may not)."""
    try:
        import yaml
    except ImportError:
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return value if isinstance(value, dict) else None


def apply_set(config: config_pb2.TrainingConfig, assignment: str) -> None:
    """Apply one `dotted.field=value` to `config` in place (values as `parse_value` reads them)."""
    if "=" not in assignment:
        raise ConfigError(assignment, "expected key=value")
    key, value = assignment.split("=", 1)
    parts = key.strip().split(".")
    nested: Any = value if parts[-1] == "chat_template" else parse_value(value, key.strip())
    for part in reversed(parts[1:]):
        nested = {part: nested}
    _set(config, parts[0], nested)


def to_dict(config: config_pb2.TrainingConfig) -> dict[str, Any]:
    return json_format.MessageToDict(config, preserving_proto_field_name=True)


LOCAL_PATH_FIELDS = ("base_model", "dataset.uri", "dataset.eval_uri", "samples.prompts_uri")


def resolve_local_paths(config: config_pb2.TrainingConfig, base: str | None = None) -> config_pb2.TrainingConfig:
    """Paths written relative to where the user stands ("./tiny", "../data/chat.jsonl", "~/models/x")
    made absolute from `base` (the current folder when None), in place; hub ids and plain dataset
    names ("chat.jsonl", taken from the server's datasets folder) are left as they are."""
    import os

    for field in LOCAL_PATH_FIELDS:
        holder = config
        *parents, leaf = field.split(".")
        for part in parents:
            holder = getattr(holder, part)
        value = getattr(holder, leaf)
        if value.startswith(("./", "../", "~")) or value in (".", ".."):
            path = os.path.expanduser(value)
            setattr(holder, leaf, os.path.normpath(os.path.join(base or os.getcwd(), path)))
    return config
