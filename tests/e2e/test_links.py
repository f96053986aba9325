"""The link walk: links planted at every level of a job's folder, of the digest cache, of an upload
and of the merge output, each pointing out of the store at a canary, one at a time. Listing,
every kind of download, a merge, uploads and a run's start are tried with each: no canary byte
comes back and nothing is written outside the store."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import grpc
import pytest

from ftlab import Client
from ftlab.config import config_from_dict
from ftlab.v1 import artifact_service_pb2 as apb
from ftlab.v1 import artifact_service_pb2_grpc, job_pb2, trainer_service_pb2_grpc
from ftlab.v1 import trainer_service_pb2 as tpb
from tests.helpers import start_server, write_chat_dataset

pytestmark = pytest.mark.slow
CANARY = b"canary-outside-the-store-" + os.urandom(6).hex().encode()
USER = (("x-ftlab-user", "links"),)


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model):
    home = tmp_path_factory.mktemp("links-home")
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=64)
    server = start_server(home, name="links")
    data = tmp_path_factory.mktemp("links-data") / "chat.jsonl"
    write_chat_dataset(data, rows=16, seed=3)
    try:
        with Client(server.address, user="links") as client:
            job = client.create_job({"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl", "eval_split": 0.1},
                                     "max_steps": 4, "save_steps": 2, "max_seq_length": 64, "eval_strategy": "steps",
                                     "eval_steps": 2})
            done = client.wait(job.name, timeout=240)
            upload = client.upload_dataset(data)
        assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.state_reason
        yield server, done, upload, data
    finally:
        assert server.stop() == 0, server.log()


def outside_tree(base) -> dict[str, bytes]:
    """A canary folder shaped like what it replaces: every file holds the canary."""
    shutil.rmtree(base, ignore_errors=True)
    for rel in ("adapter_model.safetensors", "adapter_config.json", "config.json", "trainer_state.json", "train.log",
                "data.jsonl", "report.json", "x.json", "checkpoint-2/adapter_model.safetensors",
                "run-1/train.log", "adapter/config.json"):
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(CANARY)
    return snapshot(base)


def snapshot(base) -> dict[str, bytes]:
    return {str(p.relative_to(base)): p.read_bytes() if p.is_file() else b"" for p in sorted(base.rglob("*"))}


def tries(server, job, upload, data):
    """Every read and write a user can cause, each returning the bytes it got back (or b"")."""
    def download(**fields):
        def call():
            with grpc.insecure_channel(server.address) as channel:
                stub = artifact_service_pb2_grpc.ArtifactServiceStub(channel)
                return b"".join(m.chunk for m in stub.DownloadArtifact(
                    apb.DownloadArtifactRequest(job=job.name, **fields), metadata=USER, timeout=120))
        return call

    def listing():
        with grpc.insecure_channel(server.address) as channel:
            stub = artifact_service_pb2_grpc.ArtifactServiceStub(channel)
            return stub.ListArtifacts(apb.ListArtifactsRequest(job=job.name), metadata=USER, timeout=30) \
                .SerializeToString()

    def upload_again():
        with Client(server.address, user="links") as client:
            return client.upload_dataset(data).SerializeToString()

    def upload_new():
        fresh = data.parent / f"fresh-{os.urandom(4).hex()}.jsonl"
        fresh.write_text(data.read_text() + json.dumps({"prompt": "a", "completion": os.urandom(4).hex()}) + "\n")
        with Client(server.address, user="other-links") as client:
            return client.upload_dataset(fresh).SerializeToString()

    def validate_upload():
        with Client(server.address, user="links") as client:
            return client.create_job({"base_model": job.config.base_model, "dataset": {"uri": upload.name},
                                      "max_seq_length": 64, "eval_strategy": "no"},
                                     validate_only=True).SerializeToString()

    return {"list": listing, "download all": download(all=True),
            "download adapter": download(kind=apb.ARTIFACT_KIND_ADAPTER),
            "download merged": download(kind=apb.ARTIFACT_KIND_ADAPTER, merged=True),
            "download logs": download(kind=apb.ARTIFACT_KIND_LOGS),
            "download best": download(kind=apb.ARTIFACT_KIND_CHECKPOINT, checkpoint="best"),
            "download checkpoint-2": download(kind=apb.ARTIFACT_KIND_CHECKPOINT, checkpoint="checkpoint-2"),
            "upload again": upload_again, "upload new": upload_new, "validate upload": validate_upload}


def spots(server, job, upload):
    """(where a link goes, what kind of thing it replaces or joins)."""
    job_dir = server.home / "artifacts" / "jobs" / job.id
    run = next((job_dir / "runs").iterdir()).name
    owners = server.home / "datasets" / upload.sha256 / "owners"
    owner = next(owners.iterdir()).name
    return [
        (job_dir, "dir"), (job_dir / "runs", "dir"), (job_dir / "runs" / run, "dir"),
        (job_dir / "runs" / run / "train.log", "file"), (job_dir / "runs" / run / "planted.log", "file"),
        (job_dir / "checkpoints", "dir"), (job_dir / "checkpoints" / "checkpoint-2", "dir"),
        (job_dir / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors", "file"),
        (job_dir / "checkpoints" / "checkpoint-2" / "trainer_state.json", "file"),
        (job_dir / "checkpoints" / "checkpoint-9", "dir"), (job_dir / "adapter", "dir"),
        (job_dir / "adapter" / "adapter_model.safetensors", "file"), (job_dir / "adapter" / "planted.json", "file"),
        (job_dir / "model", "dir"), (job_dir / "merged", "dir"), (job_dir / "merged" / "adapter", "dir"),
        (server.home / "artifacts" / ".cache", "dir"), (server.home / "artifacts" / ".cache" / "digests", "dir"),
        (server.home / "artifacts" / ".cache" / "digests" / f"{job.id}.json", "file"),
        (server.home / "datasets" / ".incoming", "dir"), (server.home / "datasets" / upload.sha256, "dir"),
        (server.home / "datasets" / upload.sha256 / "data.jsonl", "file"), (owners, "dir"), (owners / owner, "file"),
    ]


def test_links_at_every_level_lead_nowhere(world, tmp_path):
    server, job, upload, data = world
    calls = tries(server, job, upload, data)
    outside = tmp_path / "outside"
    held = tmp_path / "held"
    results: dict[str, int] = {}
    planted = 0
    for spot, kind in spots(server, job, upload):
        before = outside_tree(outside)
        target = outside if kind == "dir" else outside / "x.json"
        moved = held / hashlib.sha256(str(spot).encode()).hexdigest()[:12]
        if spot.exists() or spot.is_symlink():
            moved.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(spot), moved)
        spot.parent.mkdir(parents=True, exist_ok=True)
        spot.symlink_to(target)
        planted += 1
        try:
            for what, call in calls.items():
                try:
                    got = call()
                except grpc.RpcError as err:
                    assert err.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (spot, what, err)
                    got = (err.details() or "").encode()
                except Exception as err:  # the SDK's FtlabError
                    assert "INTERNAL" not in str(err) and "UNKNOWN" not in str(err), (spot, what, err)
                    got = str(err).encode()
                assert CANARY not in got, (spot, what)
                results[what] = results.get(what, 0) + 1
            assert snapshot(outside) == before, f"something was written outside the store through {spot}"
        finally:
            spot.unlink()
            if moved.exists():
                shutil.move(str(moved), spot)
    print(f"link walk: {planted} links planted, {sum(results.values())} reads and writes tried, 0 bytes outside")
    assert planted >= 20 and all(n == planted for n in results.values())


def test_a_run_never_starts_into_a_linked_folder(world, tmp_path):
    server, job, _, _ = world
    fresh = "00000000000000ff"
    job_dir = server.home / "artifacts" / "jobs" / fresh
    config = config_from_dict({"base_model": job.config.base_model, "dataset": {"uri": "chat.jsonl"},
                               "max_steps": 1, "max_seq_length": 64})
    outside = tmp_path / "outside"
    with grpc.insecure_channel(server.address) as channel:
        trainer = trainer_service_pb2_grpc.TrainerServiceStub(channel)
        for spot in (job_dir, job_dir / "runs", job_dir / "runs" / f"{fresh}-1", job_dir / "checkpoints",
                     job_dir / "adapter", job_dir / "model"):
            before = outside_tree(outside)
            shutil.rmtree(job_dir, ignore_errors=True)
            if job_dir.is_symlink():
                job_dir.unlink()
            spot.parent.mkdir(parents=True, exist_ok=True)
            spot.symlink_to(outside)
            with pytest.raises(grpc.RpcError) as refused:
                trainer.StartRun(tpb.StartRunRequest(run_id=f"{fresh}-1", job_id=fresh, config=config), timeout=30)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (spot, refused.value.details())
            assert "link" in refused.value.details()
            assert snapshot(outside) == before, spot
            spot.unlink()
