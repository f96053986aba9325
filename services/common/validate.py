"""What every request must be before any service looks at it: text without NUL characters and of a
bounded length, numbers that are finite. Checked once, for every RPC, from the message's descriptor,
so a new field is covered the day it is added.

Why: PostgreSQL refuses NUL in text (the caller saw INTERNAL), a NaN or 1e300 delay overflowed a
timestamp far from the request that carried it, and a 32 MiB name was echoed into logs and into an
error trailer larger than the client accepts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from services.common.errors import FieldViolation, InvalidArgument

MAX_TEXT = 4096  # characters in any string field not listed below
LONG_TEXT = {  # fields that legitimately carry more (full names of the fields)
    "ftlab.v1.TrainingConfig.chat_template": 256 * 1024,
    "ftlab.v1.AnalyzeFailureRequest.log": 4 * 1024 * 1024,
    "ftlab.v1.AnalyzeFailureRequest.config_json": 1024 * 1024,
    "ftlab.v1.PreflightRequest.config_json": 1024 * 1024,
}
MAX_VIOLATIONS = 20
_FLOATS = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)
M = TypeVar("M", bound=Message)


def short(value: object, limit: int = 80) -> str:
    """`value` as it may be echoed in a message or a log line: quoted, and cut when long."""
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + f"... ({len(text):,} characters)"


def check(message: Message) -> None:
    """Raise InvalidArgument naming every field of `message` (recursively) that breaks the rules."""
    violations: list[FieldViolation] = []
    _walk(message, "", violations)
    if violations:
        first = violations[0]
        raise InvalidArgument(f"invalid request: {first.field}: {first.description}", violations=violations)


def _walk(message: Message, prefix: str, out: list[FieldViolation]) -> None:
    for field, value in message.ListFields():
        if len(out) >= MAX_VIOLATIONS:
            return
        path = prefix + field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_field, value_field = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            for key, item in value.items():
                _scalar(key_field, key, f"{path}[{short(key, 40)}]", out)
                if value_field.message_type is not None:
                    _walk(item, f"{path}[{short(key, 40)}].", out)
                else:
                    _scalar(value_field, item, f"{path}[{short(key, 40)}]", out)
        elif field.is_repeated:
            for i, item in enumerate(value):
                if field.message_type is not None:
                    _walk(item, f"{path}[{i}].", out)
                else:
                    _scalar(field, item, f"{path}[{i}]", out)
        elif field.message_type is not None:
            _walk(value, path + ".", out)
        else:
            _scalar(field, value, path, out)


def _scalar(field: FieldDescriptor, value: Any, path: str, out: list[FieldViolation]) -> None:  # as field.type says
    if field.type == FieldDescriptor.TYPE_STRING:
        limit = LONG_TEXT.get(field.full_name, MAX_TEXT)
        if len(value) > limit:
            out.append(FieldViolation(path, f"at most {limit:,} characters (got {len(value):,})"))
        elif "\x00" in value:
            out.append(FieldViolation(path, "must not contain a NUL character"))
    elif field.type in _FLOATS and not math.isfinite(value):
        out.append(FieldViolation(path, f"must be a finite number, got {value}"))


def strip_nul(message: M) -> M:
    """Remove NUL characters from every string of `message` (in place), for text that comes from a
    training process, not a caller: a run's error may quote a binary file, and PostgreSQL stores no NUL."""
    return rewrite_strings(message, lambda text: text.replace("\x00", ""))


def rewrite_strings(message: M, fn: Callable[[str], str]) -> M:
    """Replace every string of `message` (recursively, in place) with `fn(string)`."""
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            continue  # no map in the messages rewritten holds free text
        if field.is_repeated:
            if field.message_type is not None:
                for item in value:
                    rewrite_strings(item, fn)
            elif field.type == FieldDescriptor.TYPE_STRING:
                value[:] = [fn(v) for v in value]
        elif field.message_type is not None:
            rewrite_strings(value, fn)
        elif field.type == FieldDescriptor.TYPE_STRING:
            new = fn(value)
            if new != value:
                setattr(message, field.name, new)
    return message
