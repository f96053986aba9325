"""TLS and mutual TLS on a real server, with certificates made by openssl for this test: a client
that trusts the CA works, a plaintext client does not; with a client CA set, services present their
own certificates to each other (a real job runs) and a caller without one is refused."""

from __future__ import annotations

import shutil
import subprocess

import grpc
import pytest

from ftlab import Client, FtlabError
from ftlab.v1 import job_pb2
from tests.helpers import start_server, wait_for, write_chat_dataset

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=ftlab-test-ca", cwd=d)
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "service"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", "san.cnf", cwd=d)
    return d


def tls_env(pki, mutual: bool) -> dict[str, str]:
    env = {"FTLAB_TLS_CERT": str(pki / "server.pem"), "FTLAB_TLS_KEY": str(pki / "server.key"),
           "FTLAB_TLS_CA": str(pki / "ca.pem")}
    if mutual:
        env.update(FTLAB_TLS_CLIENT_CA=str(pki / "ca.pem"), FTLAB_TLS_CLIENT_CERT=str(pki / "service.pem"),
                   FTLAB_TLS_CLIENT_KEY=str(pki / "service.key"))
    return env


def test_tls_server_and_client(pki, tmp_path):
    home = tmp_path / "home"
    server = start_server(home, name="tls", env=tls_env(pki, mutual=False))
    try:
        with Client(server.address, tls_ca=str(pki / "ca.pem")) as client:
            assert "basic" in {t.name for t in client.list_templates()}
            wait_for(lambda: client.get_queue().free_slots == 1, timeout=30,
                     what="the trainer registered over TLS")  # the services' own calls use TLS too
        with Client(server.address, timeout=5) as plaintext:
            with pytest.raises(FtlabError) as err:
                plaintext.list_templates()
            assert err.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        assert server.stop() == 0, server.log()


def test_mutual_tls_services_present_certificates(pki, tmp_path, tiny_model):
    home = tmp_path / "home"
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=32)
    server = start_server(home, name="mtls", env=tls_env(pki, mutual=True))
    try:
        # the services call each other (scheduler -> trainer, trainer -> scheduler) with their certificate
        with grpc.secure_channel(server.address, grpc.ssl_channel_credentials(
                (pki / "ca.pem").read_bytes(), (pki / "service.key").read_bytes(),
                (pki / "service.pem").read_bytes())) as channel:
            from ftlab.config import config_from_dict
            from ftlab.v1 import job_service_pb2, job_service_pb2_grpc

            stub = job_service_pb2_grpc.JobServiceStub(channel)
            job = stub.CreateJob(job_service_pb2.CreateJobRequest(config=config_from_dict(
                {"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 3, "save_steps": 0,
                 "max_seq_length": 64, "eval_strategy": "no"}), request_id="mtls-1"), timeout=60).job
            for response in stub.WatchJob(job_service_pb2.WatchJobRequest(name=job.name, follow=True), timeout=240):
                state = response.state
            assert state == job_pb2.JOB_STATE_SUCCEEDED
        with Client(server.address, tls_ca=str(pki / "ca.pem"), timeout=5) as no_certificate:
            with pytest.raises(FtlabError) as err:
                no_certificate.list_templates()
            assert err.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        assert server.stop() == 0, server.log()


def test_tls_without_a_ca_works_in_one_process_and_an_untrusted_peer_is_said_and_not_serving(pki, tmp_path, tiny_model):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    home = tmp_path / "home"
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=32)
    only_cert = {"FTLAB_TLS_CERT": str(pki / "server.pem"), "FTLAB_TLS_KEY": str(pki / "server.key")}
    server = start_server(home, name="tls-no-ca", env=only_cert)
    lonely = None
    try:
        with Client(server.address, tls_ca=str(pki / "ca.pem")) as client:  # its own components trust each other
            job = client.create_job({"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 3,
                                     "save_steps": 0, "max_seq_length": 64, "eval_strategy": "no"})
            assert client.wait(job.name, timeout=240).state == job_pb2.JOB_STATE_SUCCEEDED
        # a trainer elsewhere that trusts another CA says why it cannot reach the scheduler, once, and is not healthy
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other.pem", "-days",
                "2", "-subj", "/CN=another-ca", cwd=tmp_path)
        lonely = start_server(home, module="services.trainer", name="lonely", args=["--scheduler", server.address],
                              env={**only_cert, "FTLAB_TLS_CA": str(tmp_path / "other.pem")})
        wait_for(lambda: "cannot reach its scheduler" in lonely.log(), timeout=60, what="the trainer saying why")
        line = next(ln for ln in lonely.log().splitlines() if "cannot reach its scheduler" in ln)
        assert "certificate is not trusted" in line and "FTLAB_TLS_CA" in line
        credentials = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes())
        with grpc.secure_channel(lonely.address, credentials) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", "ftlab.v1.TrainerService"):
                status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
                assert status == health_pb2.HealthCheckResponse.NOT_SERVING, service
        assert lonely.log().count("cannot reach its scheduler") == 1
    finally:
        if lonely is not None:
            lonely.stop()
        assert server.stop() == 0, server.log()
