"""Who is calling. Until bearer-token auth lands, the caller names itself in `x-ftlab-user`."""

from __future__ import annotations

import re

import grpc

from services.common.errors import InvalidArgument, FieldViolation

USER_HEADER = "x-ftlab-user"
DEFAULT_USER = "default"
_VALID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def caller(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == USER_HEADER:
            if not _VALID.match(value):
                raise InvalidArgument(
                    "invalid user name in metadata",
                    violations=[FieldViolation(USER_HEADER, "1-64 of letters, digits, _ . @ -")],
                )
            return value
    return DEFAULT_USER
