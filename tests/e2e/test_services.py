"""Each service runs alone, answers health and reflection, exports /metrics, and stops cleanly on
SIGTERM; a job runs through a scheduler and a trainer in separate processes."""

from __future__ import annotations

import re
import threading
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from ftlab import Client
from ftlab.v1 import job_pb2, trainer_service_pb2, trainer_service_pb2_grpc
from helpers import start_server, wait_for, write_chat_dataset

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
    try:
        procs["scheduler"] = start_server(home, module="services.scheduler", name="scheduler")
        procs["trainer"] = start_server(home, module="services.trainer", name="trainer",
                                        args=["--scheduler", procs["scheduler"].address, "--worker-id", "gpu-node-1"])
        procs["analyzer"] = start_server(home, module="services.analyzer", name="analyzer")
        procs["artifacts"] = start_server(home, module="services.artifacts", name="artifacts",
                                          args=["--scheduler", procs["scheduler"].address])
        assert len({p.port for p in procs.values()}) == 4
        for name, proc in procs.items():
            check_health_and_reflection(proc.address, SERVICES[name])
            assert "ftlab_grpc_server_handled_total" in scrape(proc.metrics_port)

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
        text = scrape(procs["trainer"].metrics_port)
        assert re.search(r'ftlab_trainer_runs_ended_total\{outcome="succeeded"\} 1\.0', text)
    finally:
        codes = {name: p.stop() for name, p in reversed(list(procs.items()))}
    assert codes == {name: 0 for name in procs}, {n: p.log()[-2000:] for n, p in procs.items()}


def test_metrics_per_job_series_exist_only_while_the_job_runs(server, job_config):
    with Client(server.address, user="metrics") as client:
        job = client.create_job({**job_config, "max_steps": 200, "eval_strategy": "no", "save_steps": 0})
        seen_running = threading.Event()

        def running_series() -> bool:
            text = scrape(server.metrics_port)
            return (f'ftlab_job_tokens_per_second{{job_id="{job.id}"}}' in text
                    and re.search(rf'ftlab_run_tokens_per_second{{[^}}]*job_id="{job.id}"', text) is not None)

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
        assert re.search(r'ftlab_jobs\{state="succeeded"\} [1-9]', text)
        assert re.search(r'ftlab_queue_depth \d', text)
        assert re.search(r'ftlab_grpc_server_handled_total\{grpc_code="OK",grpc_method="CreateJob",'
                         r'grpc_service="ftlab.v1.JobService"\} [1-9]', text)
        assert 'ftlab_grpc_server_handling_seconds_bucket{grpc_method="GetJob"' in text
