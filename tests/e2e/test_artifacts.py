"""Artifacts of a real job through the real server: listed, downloaded as zips that zipfile and unzip
accept and that match their manifest, resumed after cuts, never outside the store or another's."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import zipfile

import grpc
import pytest

from ftlab import Client, FtlabError
from ftlab.download import MANIFEST, request_for
from ftlab.v1 import artifact_service_pb2 as apb
from ftlab.v1 import artifact_service_pb2_grpc, job_pb2
from tests.helpers import TcpProxy

pytestmark = pytest.mark.slow
USER = "art"


@pytest.fixture(scope="module")
def finished(server, tiny_model):
    config = {"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl", "eval_split": 0.1},
              "max_steps": 30, "per_device_train_batch_size": 4, "learning_rate": 5e-3, "max_seq_length": 128,
              "save_steps": 10, "eval_strategy": "steps", "eval_steps": 10, "logging_steps": 1}
    with Client(server.address, user=USER) as client:
        job = client.create_job(config, display_name="artifacts")
        done = client.wait(job.name, timeout=240)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.state_reason
    return done


def raw(server, user=USER):
    channel = grpc.insecure_channel(server.address)
    return channel, artifact_service_pb2_grpc.ArtifactServiceStub(channel), (("x-ftlab-user", user),)


def fetch(server, request, user=USER) -> tuple[apb.DownloadHeader, bytes]:
    channel, stub, md = raw(server, user)
    with channel:
        messages = list(stub.DownloadArtifact(request, metadata=md, timeout=60))
    assert messages[0].HasField("header")
    return messages[0].header, b"".join(m.chunk for m in messages[1:])


def check_zip(path) -> dict:
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        manifest = json.loads(z.read(MANIFEST))
        for f in manifest["files"]:
            assert hashlib.sha256(z.read(f["name"])).hexdigest() == f["sha256"]
        for name in z.namelist():
            assert not name.startswith("/") and ".." not in name.split("/") and "\\" not in name
    check = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
    assert check.returncode == 0 and "No errors detected" in check.stdout, check.stdout
    return manifest


def test_list_marks_best_and_latest(server, finished):
    with Client(server.address, user=USER) as client:
        artifacts = client.list_artifacts(finished.name)
        checkpoints = client.list_checkpoints(finished.name)
    by_name = {a.name: a for a in artifacts}
    assert {"checkpoint-10", "checkpoint-20", "checkpoint-30", "adapter", "logs"} <= set(by_name)
    assert by_name["checkpoint-30"].is_latest and by_name["checkpoint-30"].step == 30
    best = min((a for a in artifacts if a.kind == apb.ARTIFACT_KIND_CHECKPOINT), key=lambda a: a.eval_loss)
    assert best.is_best and sum(a.is_best for a in artifacts) == 1
    assert best.name == next(c.name for c in checkpoints if c.is_best)  # the scheduler agrees
    assert all(a.size_bytes > 0 and a.create_time.seconds > 0 for a in artifacts)


@pytest.mark.parametrize("what,checkpoint", [("checkpoint", "best"), ("checkpoint", "latest"),
                                             ("checkpoint", "checkpoint-20"), ("adapter", ""), ("logs", ""),
                                             ("all", "")])
def test_each_download_is_a_valid_zip_matching_its_manifest(server, finished, tmp_path, what, checkpoint):
    with Client(server.address, user=USER) as client:
        got = client.download(finished.name, tmp_path / "a.zip", what=what, checkpoint=checkpoint)
        artifacts = {a.name: a for a in client.list_artifacts(finished.name)}
    manifest = check_zip(got.path)
    names = {f["name"] for f in manifest["files"]}
    assert got.files == len(names) > 0 and got.size_bytes == got.path.stat().st_size
    job_dir = server.home / "artifacts" / "jobs" / finished.name.removeprefix("jobs/")
    if what == "checkpoint":
        name = {"best": next(a for a in artifacts.values() if a.is_best).name, "latest": "checkpoint-30"}.get(
            checkpoint, checkpoint)
        assert f"{name}/adapter_model.safetensors" in names and f"{name}/trainer_state.json" in names
        assert {n.split("/")[0] for n in names} == {name}
        with zipfile.ZipFile(got.path) as z:  # the bytes are the checkpoint's own
            assert z.read(f"{name}/adapter_model.safetensors") == \
                (job_dir / "checkpoints" / name / "adapter_model.safetensors").read_bytes()
            kinds = {i.filename: i.compress_type for i in z.infolist()}
        assert kinds[f"{name}/adapter_model.safetensors"] == zipfile.ZIP_STORED
        assert kinds[f"{name}/trainer_state.json"] == zipfile.ZIP_DEFLATED
    elif what == "logs":
        assert {"logs/job.json", "logs/events.jsonl", "logs/metrics.jsonl"} <= names
        assert any(n.startswith("logs/runs/") and n.endswith("/train.log") for n in names)
        assert any(n.endswith("/spec.json") for n in names)  # the resolved config the run got
        with zipfile.ZipFile(got.path) as z:
            record = json.loads(z.read("logs/job.json"))
            metrics = [json.loads(line) for line in z.read("logs/metrics.jsonl").splitlines()]
        assert record["name"] == finished.name and int(record["config"]["max_steps"]) == 30
        assert [int(m["step"]) for m in metrics] == list(range(1, 31))
    elif what == "all":
        assert {"checkpoints/checkpoint-10", "checkpoints/checkpoint-30", "adapter", "logs"} <= \
            {n.rsplit("/", 1)[0] if n.startswith("checkpoints/") else n.split("/")[0] for n in names}


def test_same_request_same_bytes_and_resume_after_cuts(server, finished, tmp_path):
    request = request_for(finished.name, "all")
    header, whole = fetch(server, request)
    assert header.total_size_bytes == len(whole) and header.filename.endswith("-all.zip")
    again_header, again = fetch(server, request)
    assert again == whole and again_header.etag == header.etag  # deterministic
    rng = random.Random(7)
    for offset in sorted(rng.sample(range(1, len(whole)), 6)):
        h, tail = fetch(server, apb.DownloadArtifactRequest(job=finished.name, all=True, offset=offset,
                                                            if_match=header.etag))
        assert h.offset == offset and tail == whole[offset:]

    # a client killed mid-download leaves FILE.part (any length) and FILE.part.json; run again, it continues
    target, part = tmp_path / "all.zip", tmp_path / "all.zip.part"
    state_file = tmp_path / "all.zip.part.json"
    with Client(server.address, user=USER) as client:
        def stop(done, total):
            if done > 0:
                raise KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt):
            client.download(finished.name, target, what="all", progress=stop)
        assert not target.exists() and 0 < part.stat().st_size < len(whole)
        state = state_file.read_text()
        for cut in sorted(rng.sample(range(1, len(whole) - 1), 4)):
            part.write_bytes(whole[:cut])  # as far as the killed client got
            state_file.write_text(state)
            target.unlink(missing_ok=True)
            got = client.download(finished.name, target, what="all")
            assert got.resumed_from == cut and target.read_bytes() == whole
    assert not part.exists() and not state_file.exists()

    # the connection dropped mid-stream: the client resumes by itself
    proxy = TcpProxy(server.port).start()
    try:
        with Client(f"127.0.0.1:{proxy.port}", user=USER) as client:
            cut_once = lambda done, total: proxy.cut() if proxy.cuts == 0 and done > len(whole) // 3 else None
            got = client.download(finished.name, tmp_path / "cut.zip", what="all", progress=cut_once)
    finally:
        proxy.close()
    assert proxy.cuts >= 1 and got.path.read_bytes() == whole


def test_resume_refused_when_the_archive_changed_and_offset_checked(server, finished):
    request = apb.DownloadArtifactRequest(job=finished.name, kind=apb.ARTIFACT_KIND_ADAPTER, offset=10,
                                          if_match="0" * 32)
    with pytest.raises(grpc.RpcError) as err:
        fetch(server, request)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    request = apb.DownloadArtifactRequest(job=finished.name, kind=apb.ARTIFACT_KIND_ADAPTER, offset=10**12)
    with pytest.raises(grpc.RpcError) as err:
        fetch(server, request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "offset" in err.value.details()


def test_another_users_job_is_not_found(server, finished, tmp_path):
    with Client(server.address, user="someone-else") as other:
        with pytest.raises(FtlabError) as err:
            other.list_artifacts(finished.name)
        assert err.value.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(FtlabError) as err:
            other.download(finished.name, tmp_path / "x.zip", what="all")
        assert err.value.code == grpc.StatusCode.NOT_FOUND
    assert not (tmp_path / "x.zip").exists()


def test_traversal_tries_are_refused_and_nothing_outside_the_store_is_served(server, finished, tmp_path):
    secret = b"outside-the-store-" + os.urandom(8).hex().encode()
    outside = tmp_path / "secret.safetensors"
    outside.write_bytes(secret)
    job_dir = server.home / "artifacts" / "jobs" / finished.name.removeprefix("jobs/")
    # links planted inside the job's folder, pointing out of the store
    (job_dir / "checkpoints" / "checkpoint-999").symlink_to(tmp_path, target_is_directory=True)
    (job_dir / "adapter" / "stolen.safetensors").symlink_to(outside)
    before = sorted(p for p in tmp_path.rglob("*"))
    job = finished.name
    job_tries = ["../" + job.removeprefix("jobs/"), "jobs/../../etc", "/etc/passwd", "jobs//etc", "C:\\Windows",
                 "c:/windows/win.ini", job + "/../x", job + "\x00", "jobs/\u0430bc", job.upper(),
                 "jobs/" + "a" * 200, "%2e%2e%2f", job.replace("jobs/", "jobs/%2e%2e/"), "\\\\server\\share"]
    checkpoint_tries = ["../../..", "/etc", "checkpoint-10/../../..", "checkpoint-10\x00", "checkpoint-10/",
                        "\uff43heckpoint-10", "checkpoint-\uff11\uff10", "checkpoint-999", "..", "C:checkpoint-10",
                        "checkpoint-10\\..\\..", "checkpoint-1e3"]
    channel, stub, md = raw(server)
    codes = []
    with channel:
        for t in job_tries:
            for call in (lambda: list(stub.DownloadArtifact(apb.DownloadArtifactRequest(job=t, all=True),
                                                            metadata=md, timeout=30)),
                         lambda: stub.ListArtifacts(apb.ListArtifactsRequest(job=t), metadata=md, timeout=30)):
                with pytest.raises(grpc.RpcError) as err:
                    call()
                codes.append(err.value.code())
        for t in checkpoint_tries:
            with pytest.raises(grpc.RpcError) as err:
                list(stub.DownloadArtifact(apb.DownloadArtifactRequest(
                    job=job, kind=apb.ARTIFACT_KIND_CHECKPOINT, checkpoint=t), metadata=md, timeout=30))
            codes.append(err.value.code())
        listed = {a.name for a in stub.ListArtifacts(apb.ListArtifactsRequest(job=job), metadata=md).artifacts}
        _, everything = fetch(server, apb.DownloadArtifactRequest(job=job, all=True))
        _, adapter = fetch(server, apb.DownloadArtifactRequest(job=job, kind=apb.ARTIFACT_KIND_ADAPTER))
    assert len(job_tries) + len(checkpoint_tries) >= 20
    assert set(codes) <= {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}, codes
    assert "checkpoint-999" not in listed
    assert secret not in everything and secret not in adapter
    assert b"stolen.safetensors" not in everything and b"checkpoint-999" not in everything
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written outside the store
    assert "refused job reference" in server.log() and "not serving" in server.log()
    (job_dir / "checkpoints" / "checkpoint-999").unlink()
    (job_dir / "adapter" / "stolen.safetensors").unlink()


def test_cli_download_and_artifacts(server, finished, tmp_path):
    env = {**os.environ, "FTLAB_USER": USER}
    out = tmp_path / "adapter.zip"
    run = subprocess.run([sys.executable, "-m", "services.cli.main", "--address", server.address, "download",
                          finished.name, "--what", "adapter", "-o", str(out), "-q"],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert "match the manifest's sha256" in run.stdout
    assert {f["name"] for f in check_zip(out)["files"]} >= {"adapter/adapter_model.safetensors"}
    listing = subprocess.run([sys.executable, "-m", "services.cli.main", "--address", server.address, "artifacts",
                              finished.name, "--json"], capture_output=True, text=True, env=env)
    assert listing.returncode == 0, listing.stderr
    assert {a["name"] for a in json.loads(listing.stdout)} >= {"checkpoint-30", "adapter", "logs"}
    missing = subprocess.run([sys.executable, "-m", "services.cli.main", "--address", server.address, "download",
                              finished.name, "--what", "model", "-o", str(tmp_path / "m.zip"), "-q"],
                             capture_output=True, text=True, env=env)
    assert missing.returncode != 0 and "NOT_FOUND" in missing.stderr + missing.stdout


def test_retention_keeps_the_best_k_and_the_latest_and_says_what_it_deleted(server, tiny_model):
    config = {"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl", "eval_split": 0.1},
              "max_steps": 30, "per_device_train_batch_size": 4, "learning_rate": 5e-3, "max_seq_length": 128,
              "save_steps": 5, "eval_strategy": "steps", "eval_steps": 5, "save_total_limit": 1,
              "keep_best_checkpoints": 2}
    with Client(server.address, user=USER) as client:
        job = client.create_job(config, display_name="retention")
        done = client.wait(job.name, timeout=240)
        assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.state_reason
        events = client.list_events(job.name)
        listed = {c.name for c in client.list_checkpoints(job.name)}
        artifacts = {a.name for a in client.list_artifacts(job.name) if a.kind == apb.ARTIFACT_KIND_CHECKPOINT}
    evals = {e.eval.step: e.eval.eval_loss for e in events if e.HasField("eval")}
    best_two = sorted(evals, key=lambda step: (evals[step], -step))[:2]
    expected = {f"checkpoint-{s}" for s in best_two} | {"checkpoint-30"}
    folder = server.home / "artifacts" / "jobs" / job.name.removeprefix("jobs/") / "checkpoints"
    on_disk = {d.name for d in folder.iterdir() if d.name.startswith("checkpoint-")}
    assert on_disk == listed == artifacts == expected
    deleted = {e.checkpoint_deleted.name for e in events if e.HasField("checkpoint_deleted")}
    assert deleted == {f"checkpoint-{s}" for s in range(5, 31, 5)} - expected
    assert all("best by eval loss" in e.checkpoint_deleted.reason for e in events if e.HasField("checkpoint_deleted"))


def test_merged_export_gives_the_same_logits_as_base_plus_adapter(server, finished, tiny_model, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with Client(server.address, user=USER) as client:
        merged = client.download(finished.name, tmp_path / "merged.zip", what="adapter", merged=True)
        adapter = client.download(finished.name, tmp_path / "adapter.zip", what="adapter")
        again = client.download(finished.name, tmp_path / "merged2.zip", what="adapter", merged=True)
    assert again.path.read_bytes() == merged.path.read_bytes()  # made once, then served as is
    for got in (merged, adapter):
        check_zip(got.path)
        with zipfile.ZipFile(got.path) as z:
            z.extractall(tmp_path / got.path.stem)
    merged_dir, adapter_dir = tmp_path / "merged" / "merged", tmp_path / "adapter" / "adapter"
    assert (merged_dir / "model.safetensors").exists() and not list(merged_dir.glob("*.bin"))
    assert not (merged_dir / "adapter_config.json").exists()  # a plain model now

    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    ids = tokenizer("the merged model answers like base plus adapter", return_tensors="pt").input_ids
    with torch.no_grad():
        plain = AutoModelForCausalLM.from_pretrained(merged_dir).eval()(ids).logits
        reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), adapter_dir).eval()(ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_model).eval()(ids).logits
    assert torch.allclose(plain, reference, atol=1e-4), (plain - reference).abs().max()
    assert not torch.allclose(base, reference, atol=1e-3)  # the adapter changed something

    with pytest.raises(grpc.RpcError) as err:
        fetch(server, apb.DownloadArtifactRequest(job=finished.name, kind=apb.ARTIFACT_KIND_LOGS, merged=True))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_with_no_evaluation_no_checkpoint_is_called_best_and_best_means_the_latest(server, job_config, tmp_path):
    with Client(server.address, user="no-eval") as client:
        job = client.create_job({**job_config, "max_steps": 4, "save_steps": 2, "eval_strategy": "no"})
        assert client.wait(job.name, timeout=180).state == job_pb2.JOB_STATE_SUCCEEDED
        checkpoints = client.list_checkpoints(job.name)
        assert [c.name for c in checkpoints] == ["checkpoint-2", "checkpoint-4"]
        assert not any(c.is_best for c in checkpoints) and checkpoints[-1].is_latest
        artifacts = client.list_artifacts(job.name)
        assert not any(a.is_best for a in artifacts)
        got = client.download(job.name, tmp_path / "best.zip", what="checkpoint", checkpoint="best")
        with zipfile.ZipFile(got.path) as z:
            assert any(n.startswith("checkpoint-4/") for n in z.namelist()), z.namelist()[:5]
        continued = client.retry_job(job.name, {"max_steps": 6}, checkpoint="best")  # a succeeded job goes on
        assert continued.resume_checkpoint == f"{job.name}/checkpoints/checkpoint-4"
        assert client.wait(continued.name, timeout=180).state == job_pb2.JOB_STATE_SUCCEEDED
        steps = [e.metrics.step for e in client.list_events(continued.name) if e.HasField("metrics")]
        assert steps == [5, 6], "it continued from the latest checkpoint's step"
        assert "continuation by no-eval" in client.list_events(continued.name)[0].state_changed.reason
