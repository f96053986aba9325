"""Requests a careless or hostile client sends: each is INVALID_ARGUMENT naming the field, never
INTERNAL or UNKNOWN, and the server keeps answering everyone else."""

from __future__ import annotations

import base64
import json
import math

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ftlab.config import config_from_dict
from ftlab.v1 import job_service_pb2, job_service_pb2_grpc

pb = job_service_pb2


def fields_of(err: grpc.RpcError) -> set[str]:
    status = rpc_status.from_call(err)
    bad = error_details_pb2.BadRequest()
    return {v.field for d in (status.details if status else ()) if d.Unpack(bad) for v in bad.field_violations}


def refused(call) -> set[str]:
    """The fields an INVALID_ARGUMENT names (it must name at least one)."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (info.value.code(), info.value.details())
    fields = fields_of(info.value)
    assert fields, info.value.details()
    return fields


@pytest.fixture
def stub(server):
    with grpc.insecure_channel(server.address) as channel:
        yield job_service_pb2_grpc.JobServiceStub(channel)


def test_retry_policy_and_watchdog_numbers_must_be_finite_and_in_range(stub, job_config):
    config = config_from_dict(job_config)
    for backoff in (1e12, math.nan, -1e300, math.inf):
        request = pb.CreateJobRequest(config=config, validate_only=True)
        request.retry_policy.backoff_seconds = backoff
        assert refused(lambda: stub.CreateJob(request, timeout=30)) == {"retry_policy.backoff_seconds"}
    request = pb.CreateJobRequest(config=config, validate_only=True)
    request.retry_policy.max_attempts = -1
    request.retry_policy.max_attempts_by_category["NOT_A_CATEGORY"] = 2
    request.watchdog.eval_timeout_seconds = 0
    assert refused(lambda: stub.CreateJob(request, timeout=30)) == {
        "retry_policy.max_attempts", "retry_policy.max_attempts_by_category[NOT_A_CATEGORY]",
        "watchdog.eval_timeout_seconds"}
    request = pb.CreateJobRequest(config=config_from_dict({**job_config, "learning_rate": math.nan}),
                                  validate_only=True)
    assert refused(lambda: stub.CreateJob(request, timeout=30)) == {"config.learning_rate"}
    assert refused(lambda: stub.CancelJob(pb.CancelJobRequest(name="jobs/0123456789abcdef", grace_seconds=-1),
                                          timeout=10)) == {"grace_seconds"}


def test_nul_characters_and_huge_strings_are_refused_by_field(stub, job_config):
    config = config_from_dict(job_config)
    assert refused(lambda: stub.CreateJob(pb.CreateJobRequest(config=config, display_name="a\x00b"),
                                          timeout=30)) == {"display_name"}
    assert refused(lambda: stub.CreateJob(pb.CreateJobRequest(config=config, request_id="r\x00"),
                                          timeout=30)) == {"request_id"}
    assert refused(lambda: stub.GetJob(pb.GetJobRequest(name="jobs/\x00"), timeout=10)) == {"name"}
    huge = "x" * (10 << 20)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetJob(pb.GetJobRequest(name=huge), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_of(info.value) == {"name"} and len(info.value.details()) < 500


def test_listing_with_unknown_states_negative_sizes_and_forged_tokens(stub):
    request = pb.ListJobsRequest()
    request.states.append(77)
    assert refused(lambda: stub.ListJobs(request, timeout=10)) == {"states[0]"}
    forged = [base64.urlsafe_b64encode(json.dumps(v).encode()).decode()
              for v in ([1, 2, 3], None, 2 ** 70, "x", [[[]]], ["not a time", "id"], [1.5], [True])]
    forged += ["%%%", base64.urlsafe_b64encode(b"[" * 100_000).decode(), base64.urlsafe_b64encode(b"\xff\xfe").decode()]
    for token in forged:
        assert refused(lambda: stub.ListJobs(pb.ListJobsRequest(page_token=token), timeout=10)) == {"page_token"}
    job = stub.CreateJob(pb.CreateJobRequest(config=config_from_dict(
        {"base_model": "m", "dataset": {"uri": "chat.jsonl"}}), force=True), timeout=30,
        metadata=(("x-ftlab-user", "hostile"),)).job
    stub.CancelJob(pb.CancelJobRequest(name=job.name), timeout=10, metadata=(("x-ftlab-user", "hostile"),))
    assert refused(lambda: stub.ListJobEvents(pb.ListJobEventsRequest(name=job.name, page_size=-1), timeout=10,
                                              metadata=(("x-ftlab-user", "hostile"),))) == {"page_size"}
    for token in forged:
        assert refused(lambda: stub.ListJobEvents(pb.ListJobEventsRequest(name=job.name, page_token=token), timeout=10,
                                                  metadata=(("x-ftlab-user", "hostile"),))) == {"page_token"}


def test_a_request_that_is_not_protobuf_is_invalid_argument(server):
    logged = len(server.log())
    with grpc.insecure_channel(server.address) as channel:
        raw = channel.unary_unary("/ftlab.v1.JobService/GetJob")  # bytes in, bytes out
        for garbage in (b"\xff\xff\xff\xff", b"\x0a\xff\x01", b"\x12"):
            with pytest.raises(grpc.RpcError) as info:
                raw(garbage, timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert fields_of(info.value) == {"request"}
    assert "Traceback" not in server.log()[logged:]
    with grpc.insecure_channel(server.address) as channel:  # still serving
        job_service_pb2_grpc.JobServiceStub(channel).ListTemplates(pb.ListTemplatesRequest(), timeout=10)


def test_the_internal_start_run_is_as_strict_as_the_public_api(server, tmp_path, tiny_model):
    from ftlab.v1 import trainer_service_pb2 as tpb
    from ftlab.v1 import trainer_service_pb2_grpc

    outside = server.home.parent / "escaped"
    config = config_from_dict({"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}})
    with grpc.insecure_channel(server.address) as channel:
        trainer = trainer_service_pb2_grpc.TrainerServiceStub(channel)
        cases = [
            (tpb.StartRunRequest(run_id="x-1", job_id="../../../escaped", config=config), {"job_id", "run_id"}),
            (tpb.StartRunRequest(run_id="0123456789abcdef-1/../../x", job_id="0123456789abcdef", config=config),
             {"run_id"}),
            (tpb.StartRunRequest(run_id="0123456789abcdef-1", job_id="0123456789abcdef",
                                 config=config_from_dict({"base_model": "m"})), {"config.dataset.uri"}),
            (tpb.StartRunRequest(run_id="0123456789abcdef-1", job_id="0123456789abcdef\x00", config=config),
             {"job_id"}),
        ]
        for request, fields in cases:
            assert refused(lambda: trainer.StartRun(request, timeout=10)) == fields
    assert not outside.exists()
    assert not (server.home / "artifacts" / "jobs" / "0123456789abcdef").exists()


def test_a_worker_registering_with_stale_runs_at_an_unreachable_address_is_answered_at_once(tmp_path):
    import socket

    from ftlab.v1 import trainer_service_pb2 as tpb
    from ftlab.v1 import trainer_service_pb2_grpc
    from tests.helpers import start_server

    silent = socket.socket()  # takes connections and never answers: each call to it waits for its deadline
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    scheduler = start_server(tmp_path / "home", module="services.scheduler", name="stale")
    try:
        info = tpb.WorkerInfo(worker_id="gone-node", address=f"127.0.0.1:{silent.getsockname()[1]}", max_runs=1,
                              running_runs=[f"{i:016x}-1" for i in range(20)])
        with grpc.insecure_channel(scheduler.address) as channel:
            registry = trainer_service_pb2_grpc.WorkerRegistryServiceStub(channel)
            reply = registry.RegisterWorker(tpb.RegisterWorkerRequest(worker=info), timeout=5)  # 20 runs to stop
        assert reply.lease_seconds > 0
    finally:
        scheduler.stop()
        silent.close()


def test_jsonl_with_bytes_that_are_not_utf8_reports_the_line_as_bad(server, tmp_path):
    from ftlab import Client

    good = json.dumps({"prompt": "a", "completion": "b"}).encode()
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(good + b"\n" + b'{"prompt": "caf\xe9", "completion": "b"}\n' + good + b"\n")
    with Client(server.address, user="utf8") as client:
        report = client.upload_dataset(path)
    assert report.rows == 2 and [(b.line, "UTF-8" in b.reason) for b in report.bad_rows] == [(2, True)]


def test_a_dataset_that_is_a_named_pipe_is_refused_before_anything_reads_it(stub, server_home, tmp_path, job_config):
    import os

    # read, a pipe nobody writes blocks for ever: pre-flight, the scheduler and the trainer would hang
    os.mkfifo(server_home / "datasets" / "pipe.jsonl")
    os.mkfifo(tmp_path / "pipe.jsonl")
    try:
        for uri in ("pipe.jsonl", str(tmp_path / "pipe.jsonl")):
            for field in ("uri", "eval_uri"):
                config = config_from_dict({**job_config, "eval_strategy": "no",
                                           "dataset": {"uri": "chat.jsonl", field: uri}})
                request = pb.CreateJobRequest(config=config)
                assert refused(lambda: stub.CreateJob(request, timeout=60)) == {f"config.dataset.{field}"}
        config = config_from_dict({**job_config, "eval_strategy": "no", "dataset": {"uri": "pipe.jsonl"}})
        with pytest.raises(grpc.RpcError) as info:
            stub.CreateJob(pb.CreateJobRequest(config=config, validate_only=True), timeout=60)
        assert "named pipe" in info.value.details()
    finally:
        (server_home / "datasets" / "pipe.jsonl").unlink()


@pytest.mark.postgres
def test_nul_characters_never_reach_postgresql(tmp_path, pg_schema, tiny_model):
    from tests.helpers import start_server

    url, schema = pg_schema
    scheduler = start_server(tmp_path / "home", module="services.scheduler", name="pg-nul",
                             args=["--database-url", f"{url}?options=-csearch_path%3D{schema}"])
    config = config_from_dict({"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}})
    try:
        with grpc.insecure_channel(scheduler.address) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            for request, field in ((pb.CreateJobRequest(config=config, display_name="x\x00"), "display_name"),
                                   (pb.CreateJobRequest(config=config, request_id="\x00"), "request_id")):
                assert refused(lambda: stub.CreateJob(request, timeout=30)) == {field}
            for name in ("jobs/\x00", "jobs/0123456789abcde\x00"):
                assert refused(lambda: stub.GetJob(pb.GetJobRequest(name=name), timeout=10)) == {"name"}
    finally:
        scheduler.stop()
    assert "Traceback" not in scheduler.log()


def test_analyzer_inputs_that_once_gave_internal(server, tmp_path, tiny_model):
    from ftlab.v1 import analyzer_pb2 as apb
    from ftlab.v1 import analyzer_pb2_grpc

    nested = "{'loss': " + "[" * 10_000 + "]" * 10_000 + "}"
    with grpc.insecure_channel(server.address) as channel:
        analyzer = analyzer_pb2_grpc.AnalyzerServiceStub(channel)
        assert refused(lambda: analyzer.AnalyzeFailure(apb.AnalyzeFailureRequest(log="x", config_json="{nope"),
                                                       timeout=30)) == {"config_json"}
        assert refused(lambda: analyzer.AnalyzeFailure(apb.AnalyzeFailureRequest(log="x", phase=77),
                                                       timeout=30)) == {"phase"}
        for log in ("{'loss'}", nested, "{'loss': 1.0, 'x': " + "(" * 300 + ")" * 300 + "}"):
            analyzer.AnalyzeFailure(apb.AnalyzeFailureRequest(log=log), timeout=30)  # analyzed, not INTERNAL
        (server.home / "datasets" / "a-folder.jsonl").mkdir(exist_ok=True)
        response = analyzer.Preflight(apb.PreflightRequest(config_json=json.dumps(
            {"base_model": str(tiny_model), "dataset": {"uri": "a-folder.jsonl"}, "per_device_train_batch_size": 2 ** 31 - 1,
             "max_seq_length": 2 ** 31 - 1, "gradient_accumulation_steps": 1})), timeout=60)
        assert any(c.name == "dataset" and "folder" in c.message for c in response.checks)
        assert response.memory.total_bytes == 2 ** 63 - 1  # absurd, and said so, but no overflow
