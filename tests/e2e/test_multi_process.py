"""A job on several processes (num_gpus 2; on this CPU-only machine, two processes over gloo) through
the real services: it trains, pauses with every rank at one step, resumes from that checkpoint and
finishes, each step reported once."""

from __future__ import annotations

import pytest

from ftlab import Client
from ftlab.v1 import job_pb2
from tests.helpers import wait_for

pytestmark = pytest.mark.slow


def test_a_two_process_job_pauses_resumes_and_finishes(server, job_config):
    config = {**job_config, "num_gpus": 2, "max_steps": 24, "per_device_train_batch_size": 2, "save_steps": 0,
              "eval_strategy": "no", "dataset": {"uri": "chat.jsonl"}}
    with Client(server.address, user="ddp") as client:
        job = client.create_job(config)
        wait_for(lambda: client.get_job(job.name).progress.step >= 4, timeout=300, what="4 steps")
        client.pause_job(job.name)
        paused = client.wait(job.name, timeout=120)
        assert paused.state == job_pb2.JOB_STATE_PAUSED, (paused.state_reason, paused.error)
        step = paused.progress.step
        assert 4 <= step < 24 and paused.resume_checkpoint == f"checkpoint-{step}"
        checkpoint = server.home / "artifacts" / "jobs" / job.id / "checkpoints" / paused.resume_checkpoint
        assert sorted(p.name for p in checkpoint.glob("rng_state_*.pth")) == ["rng_state_0.pth", "rng_state_1.pth"]

        client.resume_job(job.name)
        done = client.wait(job.name, timeout=300)
        assert done.state == job_pb2.JOB_STATE_SUCCEEDED, (done.state_reason, done.error)
        steps = [e.metrics.step for e in client.list_events(job.name) if e.HasField("metrics")]
        assert sorted(steps) == list(range(1, 25)) and len(steps) == len(set(steps))
        assert done.effective_config.num_gpus == 2
        final = server.home / "artifacts" / "jobs" / job.id / "adapter" / "adapter_model.safetensors"
        assert final.exists()  # saved once, by the ranks together
    logs = list((server.home / "artifacts" / "jobs" / job.id / "runs").glob("*/train.log"))
    assert len(logs) == 2 and all("torchrun with 2 processes (CPU, gloo)" in p.read_text() for p in logs)
