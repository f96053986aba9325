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
from ftlab.v1 import analyzer_pb2, analyzer_pb2_grpc, job_pb2, job_service_pb2
from helpers import start_server, write_chat_dataset

pytestmark = pytest.mark.slow
TOKENS = {"alice": ("user", "tok-alice"), "bob": ("user", "tok-bob"), "root": ("admin", "tok-root")}
CANARY = "alice-canary-7f3e"


@pytest.fixture(scope="module")
def two_users(tmp_path_factory, tiny_model):
    home = tmp_path_factory.mktemp("cross-home")
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=64)
    bobs = tmp_path_factory.mktemp("bob-data")  # a data root bob may read; he plants links in it
    tokens = home / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [{"user": u, "role": r, "token": t} for u, (r, t) in TOKENS.items()]}))
    server = start_server(home, name="cross", env={
        "FTLAB_TOKENS_FILE": str(tokens), "FTLAB_SERVICE_TOKEN": "tok-service",
        "FTLAB_MODEL_ROOTS": str(tiny_model.parent), "FTLAB_DATA_ROOTS": str(bobs)})
    try:
        secret = tmp_path_factory.mktemp("alice") / "secret.jsonl"
        secret.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"{CANARY} {i}"},
                                                           {"role": "assistant", "content": CANARY}]}) + "\n"
                                  for i in range(16)))
        with Client(server.address, token="tok-alice") as alice:
            upload = alice.upload_dataset(secret)
            job = alice.create_job({"base_model": str(tiny_model), "dataset": {"uri": upload.name}, "max_steps": 4,
                                    "save_steps": 2, "max_seq_length": 64, "eval_strategy": "no"})
            done = alice.wait(job.name, timeout=240)
        assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.state_reason
        yield server, done, upload, bobs, secret
    finally:
        assert server.stop() == 0, server.log()


def targets(server, job, upload, bobs):
    """Every way bob might name alice's files: (what, value)."""
    jobs = server.home / "artifacts" / "jobs"
    job_dir = jobs / job.id
    uploaded = server.home / "datasets" / upload.sha256
    out = [("checkpoint by path", str(job_dir / "checkpoints" / "checkpoint-4")),
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


def test_bob_reaches_nothing_of_alices(two_users, tiny_model):
    server, job, upload, bobs, _ = two_users
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
                    "CreateJob(validate_only)": lambda: bob.create_job(config, validate_only=True),
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


def test_uploads_belong_to_who_sent_them(two_users, tmp_path):
    server, job, upload, bobs, secret = two_users
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


def test_the_queue_shows_other_users_jobs_as_places_only(two_users, tiny_model):
    server, _, _, _, _ = two_users
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
