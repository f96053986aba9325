"""One real job through the real embedded server, over real sockets: trains, is watched live,
and is listed; bad requests get the right status codes."""

from __future__ import annotations

import threading
import time
import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ftlab import Client, FtlabError
from ftlab.config import config_from_dict
from ftlab.v1 import config_pb2, job_pb2, job_service_pb2, job_service_pb2_grpc
from tests.helpers import TcpProxy, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def client(server):
    with Client(server.address, timeout=30) as c:
        yield c


def test_job_trains_for_real_and_succeeds(client, job_config):
    job = client.create_job(job_config, display_name="e2e")
    assert job.state == job_pb2.JOB_STATE_QUEUED
    done = client.wait(job.name, timeout=240)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, (done.state_reason, done.error)

    events = client.list_events(job.name)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    losses = [e.metrics.loss for e in events if e.HasField("metrics")]
    steps = [e.metrics.step for e in events if e.HasField("metrics")]
    assert steps == list(range(1, 31)), "every step reported once, in order"
    assert losses[-1] < losses[0]
    states = [job_pb2.JobState.Name(e.state_changed.to_state) for e in events if e.HasField("state_changed")]
    assert states == ["JOB_STATE_QUEUED", "JOB_STATE_STARTING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]
    phases = {e.phase_changed.phase for e in events if e.HasField("phase_changed")}
    assert {1, 2, 3, 4, 5, 6} - {0} <= phases | {1}  # model load, data prep, training, evaluation, saving
    assert all(e.metrics.tokens_per_second > 0 for e in events if e.HasField("metrics"))

    checkpoints = client.list_checkpoints(job.name)
    assert [c.name for c in checkpoints] == ["checkpoint-10", "checkpoint-20", "checkpoint-30"]
    assert sum(c.is_best for c in checkpoints) == 1 and checkpoints[-1].is_latest
    assert all(c.HasField("eval_loss") and c.size_bytes > 0 for c in checkpoints)
    best = min(checkpoints, key=lambda c: c.eval_loss)
    assert best.is_best

    assert done.progress.step == 30 and done.progress.HasField("eval_loss")
    assert done.attempts[0].outcome == 1 and done.attempts[0].end_time.seconds > 0
    assert done.config.lora.rank == 16 and done.config.max_steps == 30  # resolved: template + overrides
    # the fast defaults are in the resolved config, and the effective config says what the trainer chose
    assert done.config.padding_free and done.config.optimizer == config_pb2.OPTIMIZER_AUTO
    assert done.effective_config.optimizer == config_pb2.OPTIMIZER_ADAMW_TORCH_FUSED
    assert done.effective_config.precision == config_pb2.PRECISION_FP32  # a CPU trainer
    assert done.effective_config.auto_micro_batch == config_pb2.SWITCH_OFF
    assert done.effective_config.lora.rank == 16 and done.effective_config.base_model == done.config.base_model
    assert {t.field for t in done.tuning} >= {"optimizer", "precision", "liger_kernel"} and all(t.reason for t in done.tuning)
    assert sum(e.HasField("settings") for e in events) == 1
    names = {a.name for a in client.list_artifacts(job.name)}
    assert {"checkpoint-10", "checkpoint-30", "adapter", "logs"} <= names


def test_watchers_see_the_same_events_across_forced_reconnects(server, client, job_config):
    proxy = TcpProxy(server.port).start()
    job = client.create_job({**job_config, "max_steps": 60, "save_steps": 20, "eval_steps": 20})
    direct, cut_stream = [], []

    def collect(address, sink):
        with Client(address) as c:
            for response in c.watch(job.name):
                sink.append(response)

    threads = [threading.Thread(target=collect, args=(server.address, direct)),
               threading.Thread(target=collect, args=(f"127.0.0.1:{proxy.port}", cut_stream))]
    for t in threads:
        t.start()
    cut_at = []
    for threshold in (8, 40, 70):
        try:
            wait_for(lambda: len(cut_stream) >= threshold or not threads[1].is_alive(), timeout=120, what="events")
        except AssertionError:
            break
        if threads[1].is_alive():
            cut_at.append(len(cut_stream))
            proxy.cut()
    for t in threads:
        t.join(timeout=240)
    proxy.close()
    assert cut_at and cut_at[0] < len(direct), "at least one cut happened mid-stream"

    sequences = [r.event.sequence for r in direct]
    assert sequences == list(range(1, len(sequences) + 1))
    assert [r.SerializeToString() for r in cut_stream] == [r.SerializeToString() for r in direct]
    assert direct[-1].state == job_pb2.JOB_STATE_SUCCEEDED

    # the job has ended: a reconnect after N still gets exactly the events after N
    for after in (0, 5, len(direct) - 1, len(direct)):
        replay = list(client.watch(job.name, after_sequence=after))
        assert [r.SerializeToString() for r in replay] == [r.SerializeToString() for r in direct[after:]]


def test_invalid_config_is_invalid_argument_naming_the_fields(server):
    stub = job_service_pb2_grpc.JobServiceStub(grpc.insecure_channel(server.address))
    request = job_service_pb2.CreateJobRequest(config=config_from_dict(
        {"base_model": "m", "learning_rate": -1, "lora": {"rank": 0}}))
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateJob(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(info.value)
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert {v.field for v in bad.field_violations} == {"config.dataset.uri", "config.learning_rate", "config.lora.rank"}
    assert all(v.description for v in bad.field_violations)

    with pytest.raises(grpc.RpcError) as info:
        stub.CreateJob(job_service_pb2.CreateJobRequest(template="nope"), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_sdk_reports_field_violations(client):
    with pytest.raises(FtlabError) as info:
        client.create_job({"base_model": "m", "dataset": {"uri": "d"}, "per_device_train_batch_size": 0})
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.field_violations[0][0] == "config.per_device_train_batch_size"


def test_unknown_job_is_not_found_everywhere(server):
    stub = job_service_pb2_grpc.JobServiceStub(grpc.insecure_channel(server.address))
    name = f"jobs/{uuid.uuid4().hex[:16]}"
    calls = [
        lambda: stub.GetJob(job_service_pb2.GetJobRequest(name=name), timeout=10),
        lambda: stub.ListCheckpoints(job_service_pb2.ListCheckpointsRequest(name=name), timeout=10),
        lambda: stub.ListJobEvents(job_service_pb2.ListJobEventsRequest(name=name), timeout=10),
        lambda: list(stub.WatchJob(job_service_pb2.WatchJobRequest(name=name, follow=True), timeout=10)),
        lambda: stub.CancelJob(job_service_pb2.CancelJobRequest(name=name), timeout=10),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        stub.GetJob(job_service_pb2.GetJobRequest(name="jobs/a/b"), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_repeated_create_with_one_request_id_makes_one_job(server, job_config):
    with Client(server.address, user="idem") as c:
        a = c.create_job(job_config, request_id="same-key")
        b = c.create_job(job_config, request_id="same-key")
        assert a.id == b.id
        assert [j.id for j in c.list_jobs()] == [a.id]
        c.cancel_job(a.name)
        assert c.wait(a.name, timeout=120).state == job_pb2.JOB_STATE_CANCELLED


def test_no_user_reaches_another_users_job(server, job_config):
    with Client(server.address, user="alice") as alice, Client(server.address, user="bob") as bob:
        job = alice.create_job(job_config)
        alice.cancel_job(job.name)
        with pytest.raises(FtlabError) as info:
            bob.get_job(job.name)
        assert info.value.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(FtlabError):
            bob.cancel_job(job.name)
        assert job.id not in {j.id for j in bob.list_jobs()}
        assert alice.wait(job.name, timeout=120).state == job_pb2.JOB_STATE_CANCELLED


def test_cancelling_an_ended_job_is_failed_precondition(server, job_config):
    with Client(server.address, user="carol") as c:
        job = c.create_job(job_config)
        c.cancel_job(job.name)
        assert c.wait(job.name, timeout=120).state == job_pb2.JOB_STATE_CANCELLED
        with pytest.raises(FtlabError) as info:
            c.cancel_job(job.name)
        assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_deadlines_are_honoured(server, job_config):
    with Client(server.address, user="dave") as c:
        job = c.create_job({**job_config, "dataset": {"uri": "chat.jsonl"}, "eval_strategy": "no"}, priority=-100)
        stub = job_service_pb2_grpc.JobServiceStub(grpc.insecure_channel(server.address))
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            for _ in stub.WatchJob(job_service_pb2.WatchJobRequest(name=job.name, follow=True), timeout=0.5,
                                   metadata=(("x-ftlab-user", "dave"),)):
                pass
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 5
        c.cancel_job(job.name)


def test_list_jobs_pages(server, job_config):
    with Client(server.address, user="erin") as c:
        ids = []
        for _ in range(3):
            job = c.create_job(job_config)
            c.cancel_job(job.name)
            ids.append(job.id)
        assert [j.id for j in c.list_jobs(page_size=1)] == list(reversed(ids))
        only = list(c.list_jobs(states=[job_pb2.JOB_STATE_QUEUED]))
        assert only == []


def test_templates_are_listed(client):
    names = [t.name for t in client.list_templates()]
    assert len(names) == 8 and "basic" in names and "efficient" in names
