"""The cross-user walk: with auth on, bob aims every file-naming field of a job, through every call
that takes one, at alice's data and models (her job's checkpoints, adapter and folder, her upload by
name and by path, links to them planted where bob may read, `..` tricks). Every try is refused
with INVALID_ARGUMENT naming the field, before anything is read: no byte of alice's canaries comes
back, no run starts, no reply shows where the server keeps its store, and the queue shows bob
nothing of alice's jobs but their place."""

from __future__ import annotations

import json

import grpc
import pytest
from google.protobuf import json_format

from ftlab import Client, FtlabError
from ftlab.config import config_from_dict
from ftlab.v1 import analyzer_pb2, analyzer_pb2_grpc
from tests.helpers import CANARY

pytestmark = pytest.mark.slow


def targets(server, job, upload, bobs):
    """Every way bob might name alice's files: (what, value)."""
    jobs = server.home / "artifacts" / "jobs"
    job_dir = jobs / job.id
    uploaded = server.home / "datasets" / upload.sha256
    out = [("checkpoint by path", str(job_dir / "checkpoints" / "checkpoint-6")),
           ("adapter by path", str(job_dir / "adapter")), ("job folder", str(job_dir)),
           ("all jobs", str(jobs)), ("store", str(server.home / "artifacts")),
           ("upload by name", upload.name), ("upload digest", upload.sha256),
           ("upload by path", str(uploaded / "data.jsonl")), ("original by path", str(uploaded / "original.jsonl")),
           ("upload relative", f"{upload.sha256}/data.jsonl"), ("dot-dot", f"../artifacts/jobs/{job.id}/adapter"),
           ("dot-dot in root", f"{bobs}/../{bobs.name}/x/../../{job_dir}"),
           ("incoming", ".incoming/x.jsonl"), ("database", str(server.home / "ftlab.db")),
           ("tokens", str(server.home / "tokens.json"))]
    for name, target in (("adapter", job_dir / "adapter"), ("data", uploaded / "data.jsonl"), ("store", server.home)):
        link = bobs / f"link-{name}"
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        out.append((f"link to {name} in bob's root", str(link)))
    return out


def test_bob_reaches_nothing_of_alices(secured, tiny_model):
    server, job, upload, bobs = secured.server, secured.job, secured.upload, secured.bob_root
    base = {"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 2, "max_seq_length": 64,
            "eval_strategy": "no", "save_steps": 0}
    fields = {"base_model": ("config.base_model",), "dataset.uri": ("config.dataset.uri",),
              "dataset.eval_uri": ("config.dataset.eval_uri",)}
    tries = refused = 0
    home = str(server.home)
    with Client(server.address, token="tok-bob") as bob, grpc.insecure_channel(server.address) as channel:
        analyzer = analyzer_pb2_grpc.AnalyzerServiceStub(channel)
        bobs_failed = bob.create_job({**base, "base_model": "no-such-org/no-such-model"}, force=True)
        bob.wait(bobs_failed.name, timeout=120)
        for what, value in targets(server, job, upload, bobs):
            for field, (violation,) in fields.items():
                config = json.loads(json.dumps(base))
                if field == "base_model":
                    config["base_model"] = value
                else:
                    config["dataset"][field.split(".")[1]] = value
                    if field == "dataset.eval_uri":
                        config["eval_strategy"] = "steps"
                        config["eval_steps"] = 1
                calls = {
                    "CreateJob": lambda: bob.create_job(config, force=True),
                    "RetryJob": lambda: bob.retry_job(bobs_failed.name, config, force=True),
                }
                for rpc, call in calls.items():
                    tries += 1
                    try:
                        accepted = call()
                    except FtlabError as exc:
                        err = exc
                    else:
                        raise AssertionError(f"{rpc} accepted {field}={value!r} ({what}): {accepted.name}")
                    assert err.code == grpc.StatusCode.INVALID_ARGUMENT, (what, field, rpc, err)
                    assert violation in {f for f, _ in err.field_violations}, (what, field, rpc, err.field_violations)
                    assert CANARY not in str(err) and home not in str(err), (what, field, rpc, err)
                    refused += 1
                tries += 1
                request = analyzer_pb2.PreflightRequest(config_json=json_format.MessageToJson(config_from_dict(config)),
                                                        owner="alice")  # bob claims to ask for alice
                with pytest.raises(grpc.RpcError) as info:
                    analyzer.Preflight(request, metadata=(("authorization", "Bearer tok-bob"),), timeout=60)
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (what, field, info.value.details())
                assert CANARY not in info.value.details() and home not in info.value.details()
                refused += 1
        assert [j.id for j in bob.list_jobs()] == [bobs_failed.id]  # nothing of his ever started on her files
    print(f"cross-user walk: {tries} tries, {refused} refused, 0 reads")
    assert tries == refused > 100


def test_uploads_belong_to_who_sent_them(secured, tmp_path):
    server, job, upload, secret = secured.server, secured.job, secured.upload, secured.secret
    copy = tmp_path / "bobs-name.jsonl"
    copy.write_bytes(secret.read_bytes())
    with Client(server.address, token="tok-bob") as bob:
        mine = bob.upload_dataset(copy)  # the same content: bob gets his own record, nothing of alice's
        assert mine.name == upload.name and mine.filename == "bobs-name.jsonl"
        job_of_bob = bob.create_job({"base_model": job.config.base_model, "dataset": {"uri": mine.name},
                                     "max_seq_length": 64, "eval_strategy": "no"}, validate_only=True)
        assert job_of_bob.preflight.dataset.rows == 16  # now that he holds it, he may train on it
    with Client(server.address, token="tok-alice") as alice:
        assert alice.upload_dataset(secret).filename == "secret.jsonl"  # hers is unchanged


def test_the_queue_shows_other_users_jobs_as_places_only(secured, tiny_model):
    server = secured.server
    config = {"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 400, "max_seq_length": 64,
              "eval_strategy": "no", "save_steps": 0}
    with Client(server.address, token="tok-alice") as alice, Client(server.address, token="tok-bob") as bob, \
            Client(server.address, token="tok-root") as root:
        running = alice.create_job(config)
        queued = [alice.create_job(config), bob.create_job(config)]
        try:
            entries = bob.get_queue().entries
            assert [(e.job, e.owner) for e in entries if e.job != queued[1].name] == [("", "")] * (len(entries) - 1)
            assert any(e.job == queued[1].name and e.owner == "bob" for e in entries)
            assert {e.job for e in root.get_queue().entries} >= {queued[0].name, queued[1].name}
        finally:
            for j in [running, *queued]:
                (bob if j is queued[1] else alice).cancel_job(j.name)
