"""Two schedulers on one PostgreSQL share the queue and never start a job twice."""

from __future__ import annotations

import pytest

from ftlab import Client
from ftlab.v1 import job_pb2
from tests.helpers import start_server, wait_for, write_chat_dataset

pytestmark = pytest.mark.slow


def test_two_schedulers_share_one_queue_and_start_each_job_once(tmp_path, tiny_model, pg_schema):
    url, schema = pg_schema
    database = f"{url}?options=-csearch_path%3D{schema}"
    home = tmp_path / "home"
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=32)
    procs = []
    try:
        for name in ("s1", "s2"):
            procs.append(start_server(home, module="services.scheduler", name=name,
                                      args=["--database-url", database, "--scheduler-id", name]))
        s1, s2 = procs
        for name, sched in (("t1", s1), ("t2", s2)):
            procs.append(start_server(home, module="services.trainer", name=name,
                                      args=["--scheduler", sched.address, "--worker-id", name, "--max-runs", "2"]))
        config = {"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 3,
                  "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "max_seq_length": 64,
                  "save_steps": 0}
        with Client(s1.address) as c1, Client(s2.address) as c2:
            wait_for(lambda: c1.get_queue().free_slots == 2 and c2.get_queue().free_slots == 2, timeout=30,
                     what="both trainers")
            jobs = [(c1 if i % 2 else c2).create_job(config) for i in range(8)]
            done = [c1.wait(j.name, timeout=600) for j in jobs]
        assert all(d.state == job_pb2.JOB_STATE_SUCCEEDED for d in done), [d.state_reason for d in done]
        assert all(len(d.attempts) == 1 for d in done), "each job started exactly once"
        for d in done:
            runs = list((home / "artifacts" / "jobs" / d.id / "runs").iterdir())
            assert [r.name for r in runs] == [f"{d.id}-1"]
        workers = {d.worker for d in done}
        assert workers == {"t1", "t2"}, "both schedulers dispatched from the shared queue"
    finally:
        for p in reversed(procs):
            p.stop()


def test_one_of_two_schedulers_killed_and_restarted_loses_nothing(tmp_path, tiny_model, pg_schema):
    import signal

    from tests.helpers import free_port

    url, schema = pg_schema
    database = f"{url}?options=-csearch_path%3D{schema}"
    home = tmp_path / "home"
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=32)
    port = free_port()
    sched_args = ["--database-url", database, "--lease-seconds", "3", "--heartbeat-seconds", "0.5"]
    procs = {}
    try:
        procs["s1"] = start_server(home, module="services.scheduler", name="s1",
                                   args=[*sched_args, "--scheduler-id", "s1", "--port", str(port)])
        procs["s2"] = start_server(home, module="services.scheduler", name="s2", args=[*sched_args, "--scheduler-id", "s2"])
        for name, sched in (("t1", procs["s1"]), ("t2", procs["s2"])):
            procs[name] = start_server(home, module="services.trainer", name=name,
                                       args=["--scheduler", sched.address, "--worker-id", name,
                                             "--cpu-threads", "1"])  # two trainers share this machine
        config = {"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 60,
                  "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "max_seq_length": 64,
                  "save_steps": 10}
        with Client(procs["s2"].address) as c2:
            wait_for(lambda: c2.get_queue().free_slots == 1, timeout=30, what="t2")
            with Client(procs["s1"].address) as c1:
                wait_for(lambda: c1.get_queue().free_slots == 1, timeout=30, what="t1")
            jobs = [c2.create_job(config) for _ in range(4)]
            wait_for(lambda: any(c2.get_job(j.name).worker == "t1" and c2.get_job(j.name).progress.step > 5
                                 for j in jobs), timeout=240, what="a job running under s1")
            procs["s1"].proc.send_signal(signal.SIGKILL)
            procs["s1"].proc.wait()
            procs["s1"] = start_server(home, module="services.scheduler", name="s1",
                                       args=[*sched_args, "--scheduler-id", "s1", "--port", str(port)])
            done = [c2.wait(j.name, timeout=600) for j in jobs]
        assert all(d.state == job_pb2.JOB_STATE_SUCCEEDED for d in done), [d.state_reason for d in done]
        for d in done:  # attempts never overlapped: at most one run of a job at a time
            for before, after in zip(d.attempts, d.attempts[1:], strict=False):
                assert before.end_time.ToNanoseconds() <= after.start_time.ToNanoseconds()
    finally:
        for p in reversed(list(procs.values())):
            p.stop()
