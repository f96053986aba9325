"""A run the kernel kills for memory: a trainer in a memory-limited cgroup (as in a container with
a memory limit) runs a job that needs more; the job fails as HOST_OOM, from the cgroup's kill
counter, not as a plain SIGKILL, and the trainer itself lives on (its runs are the first to go)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from ftlab import Client
from ftlab.v1 import analyzer_pb2, job_pb2
from tests.helpers import start_server, wait_for

pytestmark = pytest.mark.slow
CGROUP_V1 = Path("/sys/fs/cgroup/memory")
HEADROOM = 250 << 20  # the limit: what the trainer holds when idle, and this much more


@pytest.fixture
def memory_cgroup():
    if not (CGROUP_V1 / "cgroup.procs").exists():
        pytest.skip("needs the cgroup v1 memory controller mounted at /sys/fs/cgroup/memory")
    group = CGROUP_V1 / f"ftlab-test-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot make a memory cgroup here ({exc.strerror}); needs root")
    yield group
    for _ in range(50):
        try:
            group.rmdir()
            return
        except OSError:
            import time

            time.sleep(0.1)


def test_a_run_killed_for_memory_is_host_oom(tmp_path, tiny_model, memory_cgroup):
    home = tmp_path / "home"
    (home / "datasets").mkdir(parents=True)
    with open(home / "datasets" / "long.jsonl", "w") as f:  # rows of about 2,000 tokens
        for _ in range(64):
            f.write(json.dumps({"messages": [{"role": "user", "content": "tell me a long story " * 200},
                                             {"role": "assistant", "content": "once upon a time " * 300}]}) + "\n")
    scheduler = start_server(home, name="scheduler", args=["--only", "scheduler", "--only", "analyzer"])
    inside = ["sh", "-c", f'echo $$ > {memory_cgroup}/cgroup.procs && exec "$@"', "sh"]
    trainer = start_server(home, module="services.trainer", name="trainer", prefix=inside,
                           args=["--scheduler", scheduler.address, "--cpu-threads", "1"])
    try:
        wait_for(lambda: "zygote" in trainer.log() and "ready" in trainer.log(), timeout=120, what="the zygote")
        idle = int((memory_cgroup / "memory.usage_in_bytes").read_text())
        (memory_cgroup / "memory.limit_in_bytes").write_text(str(idle + HEADROOM))
        with Client(scheduler.address) as client:
            job = client.create_job({"base_model": str(tiny_model), "adapter": "full", "dataset": {"uri": "long.jsonl"},
                                     "max_steps": 3, "per_device_train_batch_size": 16, "max_seq_length": 2048,
                                     "padding_free": False, "eval_strategy": "no", "save_steps": 0})
            failed = client.wait(job.name, timeout=300)
            wait_for(lambda: client.get_job(job.name).analysis.category, timeout=60, what="the analysis")
            failed = client.get_job(job.name)
        assert trainer.proc.poll() is None, "the trainer outlived its run"
    finally:
        trainer.stop()
        scheduler.stop()
    assert failed.state == job_pb2.JOB_STATE_FAILED, failed.state_reason
    assert failed.error.signal == 9 and "out-of-memory killer" in failed.error.message
    assert "memory cgroup" in failed.error.message
    assert failed.analysis.category == analyzer_pb2.FAILURE_CATEGORY_HOST_OOM
