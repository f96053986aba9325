"""The SDK's one error: a failed call's status code, message, and what the server said was wrong."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class FtlabError(Exception):
    """A failed call: its status code, message, and the fields the server named as bad."""

    def __init__(self, code: grpc.StatusCode, message: str, field_violations: list[tuple[str, str]] | None = None,
                 reason: str = "", preconditions: list[tuple[str, str]] | None = None) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.field_violations = field_violations or []
        self.reason = reason
        self.preconditions = preconditions or []  # (subject, description), e.g. a failed pre-flight check

    @classmethod
    def from_rpc(cls, err: grpc.RpcError) -> "FtlabError":
        violations, reason, preconditions = [], "", []
        status = rpc_status.from_call(err)
        if status is not None:
            for detail in status.details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    violations += [(v.field, v.description) for v in bad.field_violations]
                elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    reason = info.reason
                elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
                    failure = error_details_pb2.PreconditionFailure()
                    detail.Unpack(failure)
                    preconditions += [(v.subject, v.description) for v in failure.violations]
        return cls(err.code(), err.details() or "", violations, reason, preconditions)
