"""Bearer-token auth on a real server: every RPC in the descriptors refuses a call without a valid
token (health and reflection excepted), users never reach another user's job, only services reach
the internal APIs, an admin sees everyone's jobs, and a real job runs end to end with auth on."""

from __future__ import annotations

import json

import grpc
import pytest
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ftlab import Client, FtlabError
from ftlab.v1 import analyzer_pb2, artifact_service_pb2, job_pb2, job_service_pb2, trainer_service_pb2

pytestmark = pytest.mark.slow
SERVICES = [s for f in (job_service_pb2, artifact_service_pb2, analyzer_pb2, trainer_service_pb2)
            for s in f.DESCRIPTOR.services_by_name.values()]
INTERNAL = {"ftlab.v1.TrainerService", "ftlab.v1.WorkerRegistryService"}


def call(channel, service, method, request, metadata):
    path = f"/{service.full_name}/{method.name}"
    out = message_factory.GetMessageClass(method.output_type)
    kind = (method.client_streaming, method.server_streaming)
    ser, de = type(request).SerializeToString, out.FromString
    if kind == (False, False):
        return channel.unary_unary(path, ser, de)(request, metadata=metadata, timeout=30)
    if kind == (False, True):
        return list(channel.unary_stream(path, ser, de)(request, metadata=metadata, timeout=30))
    if kind == (True, False):
        return channel.stream_unary(path, ser, de)(iter([request]), metadata=metadata, timeout=30)
    return list(channel.stream_stream(path, ser, de)(iter([request]), metadata=metadata, timeout=30))


def code_of(channel, service, method, request, metadata) -> grpc.StatusCode:
    try:
        call(channel, service, method, request, metadata)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def bearer(token):
    return (("authorization", f"Bearer {token}"),)


def test_a_real_job_runs_with_auth_on(secured):
    server, done = secured
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.state_reason  # scheduler <-> trainer with the service token
    assert done.owner == "alice"


def test_every_rpc_needs_a_valid_token_and_internal_ones_a_service(secured):
    server, job = secured
    methods = [(s, m) for s in SERVICES for m in s.methods]
    assert len(methods) >= 24  # every RPC of the five ftlab services
    with grpc.insecure_channel(server.address) as channel:
        for service, method in methods:
            request = message_factory.GetMessageClass(method.input_type)()
            for metadata in ((), bearer("not-a-token"), (("x-ftlab-user", "alice"),), (("authorization", "Basic x"),)):
                code = code_of(channel, service, method, request, metadata)
                assert code == grpc.StatusCode.UNAUTHENTICATED, (method.full_name, metadata, code)
            if service.full_name in INTERNAL:
                code = code_of(channel, service, method, request, bearer("tok-alice"))
                assert code == grpc.StatusCode.PERMISSION_DENIED, (method.full_name, code)
        # health and reflection need no token
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        listed = next(reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
        assert "ftlab.v1.JobService" in {s.name for s in listed.list_services_response.service}


def test_no_user_reaches_another_users_job_and_an_admin_sees_all(secured):
    server, job = secured
    addressed = []
    with grpc.insecure_channel(server.address) as channel:
        for service in SERVICES:
            if service.full_name in INTERNAL:
                continue
            for method in service.methods:
                request = message_factory.GetMessageClass(method.input_type)()
                field = next((f for f in ("name", "job", "evaluation") if f in request.DESCRIPTOR.fields_by_name),
                             None)
                if field is None:
                    continue
                if field == "evaluation":  # EvaluateJob names the job it evaluates inside
                    request.evaluation.job = job.name
                else:
                    setattr(request, field, job.name)
                if method.client_streaming:
                    continue
                addressed.append(method.name)
                code = code_of(channel, service, method, request, bearer("tok-bob"))
                assert code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED), (method.name, code)
    assert {"GetJob", "CancelJob", "PauseJob", "ResumeJob", "RetryJob", "WatchJob", "ListJobEvents",
            "ListCheckpoints", "SetJobPriority", "ListArtifacts", "DownloadArtifact", "GenerateText",
            "EvaluateJob"} <= set(addressed)
    with Client(server.address, token="tok-bob") as bob:
        assert job.name not in {j.name for j in bob.list_jobs()}
        with pytest.raises(FtlabError) as err:
            bob.get_job(job.name)
        assert err.value.code == grpc.StatusCode.NOT_FOUND
    with Client(server.address, token="tok-root") as root:
        assert root.get_job(job.name).owner == "alice"
        assert job.name in {j.name for j in root.list_jobs()}
    with Client(server.address, token="tok-alice") as alice:
        assert {a.name for a in alice.list_artifacts(job.name)} >= {"checkpoint-6", "adapter"}


def test_downloads_and_uploads_with_auth(secured, tmp_path):
    server, job = secured
    with Client(server.address, token="tok-alice") as alice:
        got = alice.download(job.name, tmp_path / "a.zip", what="adapter")  # artifacts asks as alice
        assert got.files > 0
        data = tmp_path / "d.jsonl"
        data.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n")
        assert alice.upload_dataset(data).rows == 1
    with Client(server.address, token="tok-bob") as bob:
        with pytest.raises(FtlabError) as err:
            bob.download(job.name, tmp_path / "b.zip", what="adapter")
        assert err.value.code == grpc.StatusCode.NOT_FOUND
    with Client(server.address) as anonymous:
        with pytest.raises(FtlabError) as err:
            anonymous.upload_dataset(data)
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
