"""Kill things and check the jobs: a lost trainer's job resumes elsewhere from its checkpoint, a
restarted scheduler re-attaches to runs that kept going, and failures retry per the job's policy."""

from __future__ import annotations

import os
import signal

import pytest

from ftlab import Client
from ftlab.config import config_from_dict
from ftlab.v1 import events_pb2, job_pb2, job_service_pb2
from tests.helpers import child_pid, free_port, start_server, training_children, wait_for, write_chat_dataset

pytestmark = pytest.mark.slow
SCHEDULER_ARGS = ["--lease-seconds", "3", "--heartbeat-seconds", "0.5"]


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and trainers in separate processes sharing one FTLAB_HOME; stopped afterwards."""
    home = tmp_path / "home"
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=128)
    procs: dict[str, object] = {}

    def scheduler(*extra: str):
        procs["scheduler"] = start_server(home, module="services.scheduler", name="scheduler",
                                          args=[*SCHEDULER_ARGS, *extra])
        return procs["scheduler"]

    def trainer(worker_id: str):
        procs[worker_id] = start_server(home, module="services.trainer", name=worker_id,
                                        args=["--scheduler", procs["scheduler"].address, "--worker-id", worker_id,
                                              "--cpu-threads", "1"])  # two trainers share this machine
        return procs[worker_id]

    yield home, procs, scheduler, trainer
    for p in procs.values():
        p.stop()


def steps_of(client, name):
    return [e.metrics.step for e in client.list_events(name) if e.HasField("metrics")]


def runs_alive(job_id: str) -> int:
    return sum(job == job_id for _, job, _ in training_children())


def steps_of_last_run(events) -> list[int]:
    """Metrics steps reported after the job last became RUNNING."""
    start = max(i for i, e in enumerate(events)
                if e.HasField("state_changed") and e.state_changed.to_state == job_pb2.JOB_STATE_RUNNING)
    return [e.metrics.step for e in events[start:] if e.HasField("metrics")]


def test_a_lost_trainers_job_resumes_from_its_checkpoint_on_another(cluster, tiny_model):
    home, procs, scheduler, trainer = cluster
    sched = scheduler()
    trainer("node-a")
    with Client(sched.address) as client:
        wait_for(lambda: client.get_queue().free_slots == 1, timeout=30, what="node-a")
        job = client.create_job({"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 400,
                                 "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
                                 "max_seq_length": 64, "save_steps": 10, "seed": 3})
        wait_for(lambda: len(client.list_checkpoints(job.name)) >= 2, timeout=240, what="two checkpoints")
        procs["node-a"].proc.send_signal(signal.SIGKILL)
        procs["node-a"].proc.wait()
        wait_for(lambda: runs_alive(job.id) == 0, timeout=10, what="the orphaned child to die with its trainer")
        requeued = wait_for(lambda: (j := client.get_job(job.name)).state == job_pb2.JOB_STATE_QUEUED and j,
                            timeout=30, what="the job to be requeued")
        assert "worker node-a lost" in requeued.state_reason
        resume_from = requeued.resume_checkpoint
        assert resume_from.startswith("checkpoint-")
        trainer("node-b")
        done = client.wait(job.name, timeout=300)
        assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error
        assert [a.outcome for a in done.attempts] == [events_pb2.RUN_OUTCOME_LOST, events_pb2.RUN_OUTCOME_SUCCEEDED]
        assert [a.worker for a in done.attempts] == ["node-a", "node-b"]
        second_run = steps_of_last_run(client.list_events(job.name))
        resumed_at = int(resume_from.split("-")[1])
        assert second_run == list(range(resumed_at + 1, 401)), "the second run continued from the checkpoint"


def test_a_restarted_scheduler_reattaches_to_runs_that_kept_going(cluster, tiny_model):
    home, procs, scheduler, trainer = cluster
    port = free_port()
    # a lease the restart fits in however busy the machine: past it the trainer would fence its run
    # (save, stop, hand it back) and the job would rightly start a second attempt
    lease = ("--lease-seconds", "60")
    sched = scheduler("--port", str(port), *lease)
    trainer("node-a")
    with Client(sched.address) as client:
        wait_for(lambda: client.get_queue().free_slots == 1, timeout=30, what="node-a")
        job = client.create_job({"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"},
                                 "max_steps": 300, "per_device_train_batch_size": 2,
                                 "gradient_accumulation_steps": 1, "max_seq_length": 64, "save_steps": 0})
        wait_for(lambda: client.get_job(job.name).progress.step >= 10, timeout=240, what="10 steps")
    sched.proc.send_signal(signal.SIGKILL)
    sched.proc.wait()
    sched = scheduler("--port", str(port), *lease)  # same database, same address: the trainer registers again
    assert sched.port == port
    with Client(sched.address) as client:
        done = client.wait(job.name, timeout=300)
        assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error
        assert len(done.attempts) == 1, "the run was re-attached, not started again"
        events = client.list_events(job.name)
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        assert steps_of(client, job.name) == list(range(1, 301)), "no step missed or recorded twice"
    assert "re-attaching to run" in sched.log()


def test_failures_retry_per_policy_with_backoff(server, job_config):
    with Client(server.address, user="retry") as client:
        request = job_service_pb2.CreateJobRequest(config=config_from_dict(
            {**job_config, "dataset": {"uri": "missing.jsonl"}, "eval_strategy": "no"}), request_id="retry-1")
        request.retry_policy.max_attempts = 2
        request.retry_policy.backoff_seconds = 1
        request.force = True  # past pre-flight, which would refuse the missing dataset
        job = client._call(client.jobs.CreateJob, request, idempotent=True).job
        done = wait_for(lambda: (j := client.get_job(job.name)).state == job_pb2.JOB_STATE_FAILED and j,
                        timeout=300, what="the job to fail twice")
    assert len(done.attempts) == 2
    assert all(a.outcome == events_pb2.RUN_OUTCOME_FAILED for a in done.attempts)
    gap = done.attempts[1].start_time.ToDatetime() - done.attempts[0].end_time.ToDatetime()
    assert gap.total_seconds() >= 1.0
    states = [e.state_changed for e in client_events(server, job.name) if e.HasField("state_changed")]
    assert any("DATASET_NOT_FOUND failure 1 of 2 allowed" in s.reason for s in states), [s.reason for s in states]


def client_events(server, name):
    with Client(server.address, user="retry") as c:
        return c.list_events(name)


def test_retry_limits_by_failure_category(server, job_config):
    """A stuck run is retried (STUCK allows 2 attempts) while other failures are not (max_attempts 1)."""
    import time as _time

    from tests.helpers import wait_for as _wait

    with Client(server.address, user="retry-cat") as client:
        request = job_service_pb2.CreateJobRequest(config=config_from_dict(
            {**job_config, "max_steps": 100000, "eval_strategy": "no", "save_steps": 0}), request_id="cat-1")
        request.retry_policy.max_attempts = 1
        request.retry_policy.backoff_seconds = 0.2
        request.retry_policy.max_attempts_by_category["STUCK"] = 2
        request.watchdog.step_timeout_seconds = 2
        job = client._call(client.jobs.CreateJob, request, idempotent=True).job
        def training_steps_of_current_run() -> int:
            events = client.list_events(job.name)
            starts = [i for i, e in enumerate(events)
                      if e.HasField("state_changed") and e.state_changed.to_state == job_pb2.JOB_STATE_STARTING]
            return sum(e.HasField("metrics") for e in events[starts[-1]:]) if starts else 0

        for attempt in (1, 2):
            _wait(lambda: len(client.get_job(job.name).attempts) == attempt and training_steps_of_current_run() > 2,
                  timeout=240, what=f"attempt {attempt} training")
            os.kill(child_pid(job.id, attempt), signal.SIGSTOP)
            _time.sleep(0.5)
        done = client.wait(job.name, timeout=120)
    assert done.state == job_pb2.JOB_STATE_FAILED
    assert [a.outcome for a in done.attempts] == [events_pb2.RUN_OUTCOME_FAILED] * 2
    assert done.error.type == "Stuck"


def test_a_trainer_that_shuts_down_saves_its_run_and_hands_it_back(cluster, tiny_model):
    home, procs, scheduler, trainer = cluster
    sched = scheduler()
    trainer("node-a")
    with Client(sched.address) as client:
        wait_for(lambda: client.get_queue().free_slots == 1, timeout=30, what="node-a")
        job = client.create_job({"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 300,
                                 "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
                                 "max_seq_length": 64, "save_steps": 0})
        wait_for(lambda: client.get_job(job.name).progress.step >= 10, timeout=240, what="10 steps")
        assert procs["node-a"].stop() == 0  # SIGTERM
        queued = client.get_job(job.name)
        assert queued.state == job_pb2.JOB_STATE_QUEUED, queued.state_reason
        reasons = [e.state_changed.reason for e in client.list_events(job.name) if e.HasField("state_changed")]
        assert any("node-a shut down; requeued to resume from checkpoint-" in r for r in reasons), reasons
        saved = queued.resume_checkpoint
        assert saved.startswith("checkpoint-") and saved in {c.name for c in client.list_checkpoints(job.name)}
        assert queued.attempts[0].outcome == events_pb2.RUN_OUTCOME_LOST
        trainer("node-b")
        done = client.wait(job.name, timeout=300)
        assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error
        second = steps_of_last_run(client.list_events(job.name))
        assert second[0] == int(saved.split("-")[1]) + 1 and second[-1] == 300
