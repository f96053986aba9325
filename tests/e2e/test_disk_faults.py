"""Full disks: the scheduler's database disk and the data disk fill up while jobs run. No job stays
RUNNING for ever, callers get a reason instead of INTERNAL, and once there is room again the job
ends as its run did."""

from __future__ import annotations

import grpc
import pytest

from ftlab import Client, FtlabError
from ftlab.v1 import analyzer_pb2, events_pb2, job_pb2
from tests.helpers import SmallDisk, start_server, wait_for, write_chat_dataset

pytestmark = pytest.mark.slow


def test_a_full_database_disk_holds_the_run_and_refuses_new_jobs_with_a_reason(tmp_path, tiny_model):
    home = tmp_path / "home"
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=64)
    with SmallDisk(tmp_path / "db", 16 << 20) as disk:
        server = start_server(home, args=["--database-url", f"sqlite:///{disk.path / 'ftlab.db'}", "--cpu-threads", "1"],
                              name="dbfull")
        try:
            with Client(server.address) as client:
                config = {"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 50,
                          "per_device_train_batch_size": 2, "max_seq_length": 64, "logging_steps": 1,
                          "save_steps": 1000, "eval_strategy": "no"}
                job = client.create_job(config)
                wait_for(lambda: client.get_job(job.name).progress.step >= 2, timeout=120, what="training")
                disk.fill()
                wait_for(lambda: "could not record an event of run" in server.log(), timeout=60,
                         what="the follower meeting the full disk")
                with pytest.raises(FtlabError) as refused:
                    client.create_job(config)
                assert refused.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
                assert refused.value.reason == "DATABASE_FULL" and "no space" in refused.value.message
                assert "INSERT" not in refused.value.message and str(disk.path) not in refused.value.message
                disk.free()
                final = client.wait(job.name, timeout=300)
                assert final.state == job_pb2.JOB_STATE_SUCCEEDED, final.state_reason
                steps = [e.metrics.step for e in client.list_events(job.name) if e.HasField("metrics")]
                assert steps == list(range(1, 51))
                assert [j.id for j in client.list_jobs()] == [job.id]  # the refused one left nothing
        finally:
            server.stop()


def test_a_full_data_disk_refuses_runs_with_a_reason_then_fails_the_save_as_disk_full(tmp_path, tiny_model):
    home = tmp_path / "home"
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=64)
    with SmallDisk(home / "artifacts", 2 << 20) as disk:
        server = start_server(home, args=["--cpu-threads", "1"], name="datafull")
        try:
            with Client(server.address) as client:
                disk.fill()
                # a full fine-tune: each checkpoint (weights and optimizer) takes most of the 2 MiB disk
                job = client.create_job({"base_model": str(tiny_model), "adapter": "full",
                                         "dataset": {"uri": "chat.jsonl"}, "max_steps": 12, "save_steps": 2,
                                         "save_total_limit": 0, "keep_best_checkpoints": 0, "max_seq_length": 64,
                                         "eval_strategy": "no"})
                refused = wait_for(lambda: next((e.state_changed.reason for e in client.list_events(job.name)
                                                 if "refused the run" in e.state_changed.reason), None),
                                   timeout=120, what="the trainer refusing the run")
                assert "disk is full" in refused
                assert client.get_job(job.name).state in (job_pb2.JOB_STATE_QUEUED, job_pb2.JOB_STATE_STARTING)
                disk.free()
                failed = client.wait(job.name, timeout=300)
                wait_for(lambda: client.get_job(job.name).analysis.category, timeout=60, what="the analysis")
                failed = client.get_job(job.name)
                disk.fill()  # downloads go on while the digest cache cannot be written: served without it
                logs = client.download(job.name, tmp_path / "logs.zip", what="logs")
                assert "could not keep the digests" in server.log()
        finally:
            server.stop()
    assert failed.state == job_pb2.JOB_STATE_FAILED, failed.state_reason
    assert not any(a.outcome == events_pb2.RUN_OUTCOME_LOST for a in failed.attempts)  # refusals are no lost workers
    assert failed.error.type != "ExitCode" and failed.error.message  # the child's error arrived, unwritten log or not
    assert failed.error.phase == events_pb2.PHASE_CHECKPOINT_SAVE
    assert failed.analysis.category == analyzer_pb2.FAILURE_CATEGORY_DISK_FULL
    assert failed.analysis.phase == events_pb2.PHASE_CHECKPOINT_SAVE
    assert logs.files > 0
