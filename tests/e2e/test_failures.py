"""Failed runs end as FAILED jobs that keep the error, the phase, the exit status and the log tail."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ftlab import Client
from ftlab.client import FINAL_STATES
from ftlab.v1 import analyzer_pb2, events_pb2, job_pb2
from tests.helpers import child_pid, wait_for

pytestmark = pytest.mark.slow


def test_missing_dataset_fails_in_data_prep(server, job_config):
    with Client(server.address, user="fail") as client:
        job = client.create_job({**job_config, "dataset": {"uri": "no-such-file.jsonl"}, "eval_strategy": "no"},
                                force=True)  # past pre-flight, which would refuse it
        done = client.wait(job.name, timeout=240)
    assert done.state == job_pb2.JOB_STATE_FAILED
    assert done.phase == events_pb2.PHASE_DATA_PREP
    assert done.error.type == "FileNotFoundError"
    assert "no-such-file.jsonl" in done.error.message
    assert "Traceback" in done.error.traceback
    assert done.error.exit_code == 1
    assert "FileNotFoundError" in done.error.log_tail
    assert done.attempts[0].outcome == events_pb2.RUN_OUTCOME_FAILED

    # the scheduler had the analyzer explain it, and keeps the answer on the job
    with Client(server.address, user="fail") as client:
        analyzed = wait_for(lambda: (j := client.get_job(job.name)).analysis.category and j, timeout=30,
                            what="the analysis")
    assert analyzer_pb2.FailureCategory.Name(analyzed.analysis.category) == "FAILURE_CATEGORY_DATASET_NOT_FOUND"
    assert analyzed.analysis.phase == events_pb2.PHASE_DATA_PREP
    assert any("no-such-file.jsonl" in line for line in analyzed.analysis.evidence)
    assert [s.field for s in analyzed.analysis.suggestions] == ["dataset.uri"]
    assert analyzed.analysis.suggestions[0].current == "no-such-file.jsonl"
    # the hardware it ran on, as the worker registered it: the CPU trainer of the test stack
    assert analyzed.analysis.hardware.gpu_count == 0
    assert analyzed.analysis.hardware.host_memory_bytes > 2**30

    panel = subprocess.run([sys.executable, "-m", "services.cli.main", "--address", server.address, "analyze",
                            job.name], capture_output=True, text=True, env={**os.environ, "FTLAB_USER": "fail"})
    assert panel.returncode == 0, panel.stderr
    assert "DATASET_NOT_FOUND" in panel.stdout and "data prep" in panel.stdout and "dataset.uri" in panel.stdout
    assert "Ran on: CPU only" in panel.stdout


def test_ftlab_analyze_reads_a_log_given_directly(server, tmp_path):
    fixture = Path(__file__).parents[1] / "fixtures" / "failures" / "h100-cuda_oom_train"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"per_device_train_batch_size": 16, "gradient_accumulation_steps": 1}))
    out = subprocess.run([sys.executable, "-m", "services.cli.main", "--address", server.address, "analyze", "--log",
                          str(fixture / "log.txt"), "--config", str(config), "--exit-code", "1", "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert {"category", "phase", "summary", "evidence", "suggestions"} <= set(result)
    assert (result["category"], result["phase"]) == ("CUDA_OOM", "TRAINING")
    batch = next(s for s in result["suggestions"] if s["field"] == "per_device_train_batch_size")
    assert (batch["current"], batch["suggested"]) == ("16", "8")


def test_a_killed_run_fails_with_its_signal(server, job_config):
    with Client(server.address, user="kill") as client:
        job = client.create_job({**job_config, "max_steps": 100000, "eval_strategy": "no", "save_steps": 0})
        wait_for(lambda: client.get_job(job.name).progress.step > 2, timeout=240, what="training steps")
        child = child_pid(job.id)
        os.kill(child, signal.SIGKILL)
        done = client.wait(job.name, timeout=60)
    assert done.state == job_pb2.JOB_STATE_FAILED
    assert done.error.signal == signal.SIGKILL
    assert done.error.type == "Signal"
    assert "SIGKILL" in done.error.message
    assert done.phase == events_pb2.PHASE_TRAINING


def test_cancel_stops_a_running_job_and_its_process(server, job_config):
    with Client(server.address, user="cancel") as client:
        job = client.create_job({**job_config, "max_steps": 100000, "eval_strategy": "no", "save_steps": 0})
        wait_for(lambda: client.get_job(job.name).progress.step > 2, timeout=240, what="training steps")
        child = child_pid(job.id)
        client.cancel_job(job.name, grace_seconds=5)
        done = client.wait(job.name, timeout=60)
    assert done.state == job_pb2.JOB_STATE_CANCELLED
    assert done.state_reason == "cancelled by cancel"
    wait_for(lambda: not _alive(child), timeout=10, what="the child to be gone")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_a_frozen_run_is_killed_by_the_watchdog(server, job_config):
    import re
    import urllib.request

    from ftlab.config import config_from_dict
    from ftlab.v1 import job_service_pb2

    with Client(server.address, user="stuck") as client:
        request = job_service_pb2.CreateJobRequest(
            config=config_from_dict({**job_config, "max_steps": 100000, "eval_strategy": "no", "save_steps": 0}))
        # 8 s of silence: well past a step of this run even on a busy machine, whose slow steps a tighter
        # limit would take for a frozen run before the test froze it
        request.watchdog.step_timeout_seconds = 8
        request.request_id = "frozen"
        job = client._call(client.jobs.CreateJob, request, idempotent=True).job
        assert job.watchdog.step_timeout_seconds == 8
        running = wait_for(lambda: (lambda j: j if j.progress.step > 2 or j.state in FINAL_STATES else None)(
            client.get_job(job.name)), timeout=240, what="training steps")
        assert running.state not in FINAL_STATES, (running.state, running.error.message)
        child = child_pid(job.id)
        os.kill(child, signal.SIGSTOP)
        done = client.wait(job.name, timeout=60)
    assert done.state == job_pb2.JOB_STATE_FAILED
    assert done.error.type == "Stuck"
    assert done.phase == events_pb2.PHASE_TRAINING
    assert "no progress for" in done.error.message and "limit 8s" in done.error.message
    assert done.error.signal == signal.SIGKILL
    wait_for(lambda: not _alive(child), timeout=10, what="the frozen child to be gone")
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert re.search(r'ftlab_stuck_job_timeouts_total\{phase="training"\} [1-9]', text)
