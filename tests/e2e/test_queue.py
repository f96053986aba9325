"""The queue: priorities, positions and start estimates, priority changes, per-user limits."""

from __future__ import annotations

import pytest

from ftlab import Client, FtlabError
from ftlab.v1 import job_pb2
from tests.helpers import start_server, wait_for, write_chat_dataset

pytestmark = pytest.mark.slow


def test_priorities_positions_and_per_user_limits(tmp_path, tiny_model):
    home = tmp_path / "home"
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=64)
    sched = start_server(home, module="services.scheduler", name="scheduler", args=["--max-running-per-user", "1"])
    trainer = start_server(home, module="services.trainer", name="trainer",
                           args=["--scheduler", sched.address, "--max-runs", "2"])
    long_job = {"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 100000,
                "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "max_seq_length": 64,
                "save_steps": 0}
    try:
        with Client(sched.address, user="alice") as alice, Client(sched.address, user="bob") as bob, \
                Client(sched.address, user="carol") as carol:
            wait_for(lambda: alice.get_queue().free_slots == 2, timeout=30, what="the trainer")
            a1 = alice.create_job(long_job)
            wait_for(lambda: alice.get_job(a1.name).state == job_pb2.JOB_STATE_RUNNING, timeout=120, what="a1")
            a2 = alice.create_job(long_job, priority=10)
            b1 = bob.create_job(long_job)
            # alice is at her limit: bob's job takes the second slot even though a2 has a higher priority
            wait_for(lambda: bob.get_job(b1.name).state == job_pb2.JOB_STATE_RUNNING, timeout=120, what="b1")
            assert alice.get_job(a2.name).state == job_pb2.JOB_STATE_QUEUED
            low = carol.create_job(long_job, priority=-5)
            high = carol.create_job(long_job, priority=5)
            wait_for(lambda: alice.get_job(a1.name).progress.HasField("eta_seconds"), timeout=60, what="an ETA")

            queue = alice.get_queue()  # others' jobs are places in line, without a name or an owner
            assert [(e.job, e.owner) for e in queue.entries] == [(a2.name, "alice"), ("", ""), ("", "")]
            assert [e.job for e in carol.get_queue().entries] == ["", high.name, low.name]
            assert [e.position for e in queue.entries] == [1, 2, 3]
            assert queue.running == 2 and queue.free_slots == 0
            assert queue.entries[0].HasField("estimated_start_seconds")

            carol.set_priority(low.name, 50)
            assert [e.job for e in carol.get_queue().entries][0] == low.name
            with pytest.raises(FtlabError) as info:
                alice.set_priority(a1.name, 3)
            assert info.value.code.name == "FAILED_PRECONDITION"

            bob.cancel_job(b1.name, grace_seconds=2)
            # the freed slot goes to carol's job now first in line, not to alice (still at her limit)
            wait_for(lambda: carol.get_job(low.name).state == job_pb2.JOB_STATE_RUNNING, timeout=120, what="low")
            assert alice.get_job(a2.name).state == job_pb2.JOB_STATE_QUEUED
            for client, job in ((alice, a1), (alice, a2), (carol, low), (carol, high)):
                client.cancel_job(job.name, grace_seconds=2)
            for client, job in ((alice, a1), (alice, a2), (carol, low), (carol, high), (bob, b1)):
                assert client.wait(job.name, timeout=60).state == job_pb2.JOB_STATE_CANCELLED
    finally:
        trainer.stop()
        sched.stop()
