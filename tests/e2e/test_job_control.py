"""Pause and resume keep the job id and give the same result as a run never paused; cancel is final."""

from __future__ import annotations

import pytest

from ftlab import Client
from ftlab.v1 import job_pb2
from tests.helpers import wait_for

pytestmark = pytest.mark.slow


def losses(client: Client, name: str) -> dict[int, float]:
    out: dict[int, float] = {}
    for e in client.list_events(name):
        if e.HasField("metrics"):
            assert e.metrics.step not in out, f"step {e.metrics.step} reported twice"
            out[e.metrics.step] = e.metrics.loss
    return out


def adapter(home, job_id: str):
    from safetensors.torch import load_file

    return load_file(str(home / "artifacts" / "jobs" / job_id / "adapter" / "adapter_model.safetensors"))


def test_paused_and_resumed_run_matches_an_uninterrupted_one(server, job_config):
    config = {**job_config, "max_steps": 120, "eval_strategy": "no", "save_steps": 0, "seed": 7,
              "lora": {"dropout": 0.1}}
    with Client(server.address, user="pauser") as client:
        straight = client.create_job(config)
        assert client.wait(straight.name, timeout=300).state == job_pb2.JOB_STATE_SUCCEEDED

        job = client.create_job(config)
        wait_for(lambda: client.get_job(job.name).progress.step >= 20, timeout=300, what="20 steps")
        assert client.pause_job(job.name).state == job_pb2.JOB_STATE_PAUSING
        paused = client.wait(job.name, timeout=120)
        assert paused.state == job_pb2.JOB_STATE_PAUSED
        step = paused.progress.step
        assert 20 <= step < 120
        assert paused.resume_checkpoint == f"checkpoint-{step}"
        assert [c.name for c in client.list_checkpoints(job.name)] == [f"checkpoint-{step}"]

        resumed = client.resume_job(job.name)
        assert resumed.id == job.id and resumed.state == job_pb2.JOB_STATE_QUEUED
        done = client.wait(job.name, timeout=300)
        assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error
        assert [a.outcome for a in done.attempts] == [4, 1]  # paused, then succeeded

        a, b = losses(client, straight.name), losses(client, job.name)
        assert sorted(b) == list(range(1, 121))
        for s in a:
            assert b[s] == pytest.approx(a[s], rel=1e-5, abs=1e-6), f"loss differs at step {s}"
    wa, wb = adapter(server.home, straight.id), adapter(server.home, job.id)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert (wa[k] - wb[k]).abs().max().item() < 1e-6, k


def test_cancel_a_queued_job_at_once_and_pause_needs_a_running_job(server, job_config):
    from ftlab import FtlabError

    with Client(server.address, user="queue") as client:
        blocker = client.create_job({**job_config, "max_steps": 100000, "eval_strategy": "no", "save_steps": 0})
        wait_for(lambda: client.get_job(blocker.name).state == job_pb2.JOB_STATE_RUNNING, timeout=120, what="running")
        queued = client.create_job(job_config)
        assert client.get_job(queued.name).state == job_pb2.JOB_STATE_QUEUED
        with pytest.raises(FtlabError) as info:
            client.pause_job(queued.name)
        assert info.value.code.name == "FAILED_PRECONDITION"
        cancelled = client.cancel_job(queued.name)
        assert cancelled.state == job_pb2.JOB_STATE_CANCELLED
        assert cancelled.state_reason == "cancelled by queue" and cancelled.end_time.seconds > 0
        client.cancel_job(blocker.name, grace_seconds=2)
        assert client.wait(blocker.name, timeout=60).state == job_pb2.JOB_STATE_CANCELLED
