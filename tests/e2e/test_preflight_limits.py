"""Pre-flight renders users' chat templates over their data: it runs in worker processes with a
time and memory budget, one user cannot take every worker, everyone else's calls keep their pace,
and a pre-flight that could not run is recorded on the job, never skipped silently."""

from __future__ import annotations

import concurrent.futures
import time

import grpc
import pytest

from ftlab import Client, FtlabError
from ftlab.v1 import analyzer_pb2
from tests.helpers import start_server

LOOP = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
GREEDY = "{{ messages[0]['content'] * 3000000000 }}"  # gigabytes at once: the memory budget, not the clock
BROKEN = "{% for m in messages %}{{ m.content }"


def template_check(job) -> analyzer_pb2.PreflightCheck:
    return next(c for c in job.preflight.checks if c.name == "chat_template")


def test_a_template_that_never_ends_is_stopped_and_others_are_served(server, job_config):
    attacker = {**job_config, "chat_template": LOOP}
    with Client(server.address, user="mallory", timeout=120) as mallory, \
            Client(server.address, user="carol", timeout=30) as carol:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            attacks = [pool.submit(mallory.create_job, attacker, validate_only=True) for _ in range(8)]
            reads = []
            while not all(a.done() for a in attacks):
                started = time.monotonic()
                carol.get_queue()
                list(carol.list_jobs())
                reads.append(time.monotonic() - started)
            results = [a.exception() or a.result() for a in attacks]
        stopped = [r for r in results if not isinstance(r, Exception)]
        busy = [r for r in results if isinstance(r, FtlabError)]
        assert len(stopped) + len(busy) == 8 and stopped and busy
        assert {e.code for e in busy} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        for job in stopped:
            check = template_check(job)
            assert check.status == analyzer_pb2.CHECK_STATUS_FAIL and "loop" in check.message
            assert not job.preflight.ok
        assert reads and max(reads) < 10, reads  # others' reads were never held up behind the attack
        normal = carol.create_job(job_config, validate_only=True)  # pre-flight runs, in full, for others
        assert normal.preflight.ok and normal.preflight.dataset.rows > 0
        assert not any("did not run" in c.message for c in normal.preflight.checks)


def test_templates_that_grow_without_bound_or_do_not_compile_fail_the_check(server, job_config):
    with Client(server.address, user="tmpl", timeout=120) as client:
        greedy = client.create_job({**job_config, "chat_template": GREEDY}, validate_only=True)
        assert template_check(greedy).status == analyzer_pb2.CHECK_STATUS_FAIL
        assert "memory" in template_check(greedy).message
        broken = client.create_job({**job_config, "chat_template": BROKEN}, validate_only=True)
        assert template_check(broken).status == analyzer_pb2.CHECK_STATUS_FAIL
        assert "does not compile" in template_check(broken).message
        with pytest.raises(FtlabError) as refused:  # and a real submission is refused with the reason
            client.create_job({**job_config, "chat_template": BROKEN})
        assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION and "chat_template" in refused.value.message
        ok = client.create_job(job_config, validate_only=True)  # the worker that ran out of memory was fine after
        assert ok.preflight.ok


def test_a_preflight_that_could_not_run_is_recorded(tmp_path, tiny_model, job_config):
    from tests.helpers import free_port, write_chat_dataset

    home = tmp_path / "home"
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=16)
    nowhere = f"127.0.0.1:{free_port()}"  # no analyzer listens there
    server = start_server(home, module="services.scheduler", name="no-analyzer", args=["--analyzer", nowhere])
    try:
        with Client(server.address) as client:
            job = client.create_job(job_config, validate_only=True)
        (check,) = job.preflight.checks
        assert check.name == "preflight" and check.status == analyzer_pb2.CHECK_STATUS_WARN
        assert "did not run" in check.message and job.preflight.ok
    finally:
        server.stop()
