"""The one table of status codes: every domain error has its code, a subclass keeps its base's, and
anything else is INTERNAL."""

from __future__ import annotations

import inspect

import grpc
from google.rpc import code_pb2, error_details_pb2
from grpc_status import rpc_status

from services.analyzer.pool import Busy
from services.common import errors, status


def test_every_domain_error_has_a_status_code():
    kinds = [c for _, c in inspect.getmembers(errors, inspect.isclass)
             if issubclass(c, errors.DomainError) and c is not errors.DomainError]
    assert len(kinds) >= 8
    missing = [c.__name__ for c in kinds if c not in status.CODES]
    assert not missing, f"no status code for {missing}"
    assert len(set(status.CODES.values())) == len(status.CODES)  # no two errors share a code


def test_a_subclass_keeps_its_bases_code_and_anything_else_is_internal():
    assert status.code_of(Busy("busy")) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status.code_of(errors.DomainError("x")) == grpc.StatusCode.INTERNAL
    assert status.code_of(ValueError("x")) == grpc.StatusCode.INTERNAL


def test_an_invalid_argument_becomes_its_status_with_the_field_named():
    err = errors.InvalidArgument("bad config", reason="BAD_FIELD",
                                 violations=[errors.FieldViolation("config.learning_rate", "must be positive")])
    st = status.to_status(err)
    assert st.code == grpc.StatusCode.INVALID_ARGUMENT
    decoded = rpc_status.status_pb2.Status.FromString(dict(st.trailing_metadata)["grpc-status-details-bin"])
    assert decoded.code == code_pb2.INVALID_ARGUMENT and decoded.message == "bad config"
    bad = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad) for d in decoded.details)
    assert [(v.field, v.description) for v in bad.field_violations] == [("config.learning_rate", "must be positive")]
