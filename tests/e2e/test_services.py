"""Each service runs alone, answers health and reflection, exports /metrics, and stops cleanly on
SIGTERM; a job runs through a scheduler and a trainer in separate processes."""

from __future__ import annotations

import re
import threading
import urllib.request
import zipfile
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from ftlab import Client
from ftlab.v1 import job_pb2, trainer_service_pb2, trainer_service_pb2_grpc
from tests.helpers import free_port, start_server, wait_for, write_chat_dataset

pytestmark = pytest.mark.slow

SERVICES = {
    "scheduler": ["ftlab.v1.JobService", "ftlab.v1.WorkerRegistryService"],
    "trainer": ["ftlab.v1.TrainerService"],
    "analyzer": ["ftlab.v1.AnalyzerService"],
    "artifacts": ["ftlab.v1.ArtifactService"],
}


def check_health_and_reflection(address: str, names: list[str]) -> None:
    channel = grpc.insecure_channel(address)
    health = health_pb2_grpc.HealthStub(channel)
    for name in ["", *names]:
        reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
    with pytest.raises(grpc.RpcError) as info:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    listed = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert set(names) | {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= listed
    channel.close()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def test_embedded_server_answers_health_and_reflection_for_all_four(server):
    check_health_and_reflection(server.address, [n for names in SERVICES.values() for n in names])


def test_services_run_apart_and_a_job_crosses_them(tmp_path, tiny_model):
    home = tmp_path / "home"
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=64)
    procs = {}
    ports = {"analyzer": free_port(), "artifacts": free_port()}  # the scheduler is told where they will be
    try:
        procs["scheduler"] = start_server(home, module="services.scheduler", name="scheduler", args=[
            "--analyzer", f"127.0.0.1:{ports['analyzer']}", "--artifacts", f"127.0.0.1:{ports['artifacts']}"])
        procs["trainer"] = start_server(home, module="services.trainer", name="trainer",
                                        args=["--scheduler", procs["scheduler"].address, "--worker-id", "gpu-node-1"])
        procs["analyzer"] = start_server(home, module="services.analyzer", name="analyzer",
                                         args=["--port", str(ports["analyzer"])])
        procs["artifacts"] = start_server(home, module="services.artifacts", name="artifacts",
                                          args=["--scheduler", procs["scheduler"].address,
                                                "--port", str(ports["artifacts"])])
        assert len({p.port for p in procs.values()}) == 4
        for name, proc in procs.items():
            check_health_and_reflection(proc.address, SERVICES[name])
            assert "ftlab_grpc_server_handled_total" in scrape(proc.metrics_port)
        # the scheduler serves the public APIs of the services apart from it, by forwarding
        check_health_and_reflection(procs["scheduler"].address, ["ftlab.v1.AnalyzerService", "ftlab.v1.ArtifactService"])

        trainer = trainer_service_pb2_grpc.TrainerServiceStub(grpc.insecure_channel(procs["trainer"].address))
        info = trainer.GetWorkerInfo(trainer_service_pb2.GetWorkerInfoRequest(), timeout=10).worker
        assert info.worker_id == "gpu-node-1" and info.max_runs == 1 and info.cpu_count >= 1
        assert info.address.endswith(f":{procs['trainer'].port}") and info.memory_total_bytes > 0
        assert {"torch", "transformers", "trl", "peft"} <= set(info.versions)

        with Client(procs["scheduler"].address) as client:
            wait_for(lambda: client.get_queue().free_slots == 1, timeout=30, what="the trainer to register")
            job = client.create_job({"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 5,
                                     "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
                                     "max_seq_length": 64, "save_steps": 5})
            done = client.wait(job.name, timeout=240)
            assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error
            assert done.worker == "gpu-node-1"
            assert [c.name for c in client.list_checkpoints(job.name)] == ["checkpoint-5"]
        _one_address(procs["scheduler"].address, job.name, tmp_path)
        procs["openai"] = start_server(home, module="services.openai_gateway", name="openai",
                                       args=["--scheduler", procs["scheduler"].address])
        _openai_gateway_alone(procs["openai"], job.name, home / "datasets" / "chat.jsonl")
        text = scrape(procs["trainer"].metrics_port)
        assert re.search(r'ftlab_trainer_runs_ended_total\{outcome="succeeded"\} 1\.0', text)
    finally:
        codes = {name: p.stop() for name, p in reversed(list(procs.items()))}
    assert codes == {name: 0 for name in procs}, {n: p.log()[-2000:] for n, p in procs.items()}


def _openai_gateway_alone(gateway, job: str, data: Path) -> None:
    """The REST gateway as a process of its own, a client of the scheduler's one address: jobs, uploads
    (forwarded to the artifacts service), health and metrics."""
    from openai import OpenAI

    base = f"http://127.0.0.1:{gateway.port}"
    client = OpenAI(base_url=f"{base}/v1", api_key="unused")  # a server without tokens takes any key
    assert job.replace("jobs/", "ftjob-") in [j.id for j in client.fine_tuning.jobs.list()]
    uploaded = client.files.create(file=data.open("rb"), purpose="fine-tune")
    assert client.files.content(uploaded.id).read() == data.read_bytes()
    assert urllib.request.urlopen(f"{base}/healthz", timeout=10).status == 200
    assert 'route="/v1/files",status="200"' in scrape(gateway.metrics_port)


def _one_address(address: str, job: str, tmp_path) -> None:
    """What a user does with the artifacts and the analyzer, through the scheduler's address alone:
    the CLI's commands literally, and the statuses and field errors of the services behind."""
    import json
    import os
    import subprocess
    import sys

    def ftlab(*args, user="default"):  # the job's owner
        return subprocess.run([sys.executable, "-m", "services.cli.main", "--address", address, *args],
                              capture_output=True, text=True, timeout=120, env={**os.environ, "FTLAB_USER": user})

    listed = ftlab("artifacts", job, "--json")
    assert listed.returncode == 0, listed.stderr
    assert {"checkpoint-5"} <= {a["name"] for a in json.loads(listed.stdout)}
    got = ftlab("download", job, "--what", "adapter", "-o", str(tmp_path / "adapter.zip"), "-q")
    assert got.returncode == 0, got.stderr
    assert zipfile.ZipFile(tmp_path / "adapter.zip").namelist()  # a whole archive, checked by the SDK
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"{a}+1=", "completion": str(a + 1)}) + "\n" for a in range(8)))
    up = ftlab("upload", str(data), "--json", "-q")
    assert up.returncode == 0, up.stderr
    assert int(json.loads(up.stdout)["rows"]) == 8  # int64 is a string in JSON
    assert json.loads(up.stdout)["name"] in ftlab("datasets").stdout
    log = tmp_path / "train.log"
    log.write_text((tmp_path / "rows.jsonl").read_text())  # a log with no traceback: still analyzed
    analyzed = ftlab("analyze", "--log", str(log), "--json")
    assert analyzed.returncode == 0, analyzed.stderr
    assert "category" in json.loads(analyzed.stdout)
    # a refusal of the service behind comes back as it was: its code (exit status) and the field it names
    refused = ftlab("download", job, "--checkpoint", "checkpoint-99", "-o", str(tmp_path / "none.zip"))
    assert refused.returncode == 3 and "checkpoint-99" in refused.stderr, refused.stderr
    other = ftlab("artifacts", job, user="someone-else")  # the service behind authorizes the caller itself
    assert other.returncode in (3, 4), other.stderr


def test_metrics_per_job_series_exist_only_while_the_job_runs(server, job_config):
    with Client(server.address, user="metrics") as client:
        job = client.create_job({**job_config, "max_steps": 200, "eval_strategy": "no", "save_steps": 0})
        seen_running = threading.Event()

        def running_series() -> bool:
            text = scrape(server.metrics_port)
            return f'ftlab_job_tokens_per_second{{job_id="{job.id}"}}' in text

        def poll():
            while not seen_running.is_set():
                if running_series():
                    seen_running.set()
                    return
                if client.get_job(job.name).state in (job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED):
                    return

        poller = threading.Thread(target=poll)
        poller.start()
        done = client.wait(job.name, timeout=240)
        poller.join(timeout=30)
        assert done.state == job_pb2.JOB_STATE_SUCCEEDED
        assert seen_running.is_set(), "per-job series while running"
        text = scrape(server.metrics_port)
        assert job.id not in text, "per-job series removed once the job ended"
        assert "ftlab_run_tokens_per_second" not in text, "throughput reaches Prometheus by one route: per job"
        assert re.search(r'ftlab_jobs\{state="succeeded"\} [1-9]', text)
        assert re.search(r'ftlab_queue_depth \d', text)
        assert re.search(r'ftlab_grpc_server_handled_total\{grpc_code="OK",grpc_method="CreateJob",'
                         r'grpc_service="ftlab.v1.JobService"\} [1-9]', text)
        assert 'ftlab_grpc_server_handling_seconds_bucket{grpc_method="GetJob"' in text
