"""Dataset uploads through the real server: every supported format and file type is detected,
validated and normalized; bad rows are reported by line; content is stored once; uploads over the
limit, with a wrong checksum or unusable are refused and leave nothing behind."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys

import grpc
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ftlab import Client
from ftlab.v1 import artifact_service_pb2 as apb
from ftlab.v1 import artifact_service_pb2_grpc, job_pb2
from tests.conftest import UPLOAD_LIMIT

pytestmark = pytest.mark.slow
CHAT = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]


def write(path, rows, kind):
    if kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif kind == "json":
        path.write_text(json.dumps(rows, indent=1))
    elif kind == "json-object":
        path.write_text(json.dumps({"data": rows}, indent=1))
    elif kind == "csv":
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows)
    elif kind == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


CASES = [
    ("messages", "jsonl", [{"messages": CHAT}] * 5, {"messages"}),
    ("messages", "csv", [{"messages": CHAT}] * 4, {"messages"}),
    ("sharegpt", "json", [{"conversations": [{"from": "human", "value": f"hi {i}"}, {"from": "gpt", "value": "hello"}]}
                          for i in range(6)], {"messages"}),
    ("alpaca", "csv", [{"instruction": f"Add {i} and 1", "input": "", "output": str(i + 1)} for i in range(7)],
     {"prompt", "completion"}),
    ("prompt_completion", "parquet", [{"prompt": f"Say {i}", "completion": str(i)} for i in range(8)],
     {"prompt", "completion"}),
    ("preference", "jsonl", [{"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Rome"}] * 3,
     {"prompt", "chosen", "rejected"}),
    ("preference", "json-object", [{"prompt": [CHAT[0]], "chosen": [CHAT[1]],
                                    "rejected": [{"role": "assistant", "content": "5"}]}] * 2,
     {"prompt", "chosen", "rejected"}),
]


@pytest.mark.parametrize("fmt,kind,rows,columns", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_each_format_is_detected_and_normalized(server, tmp_path, fmt, kind, rows, columns):
    suffix = {"json-object": "json"}.get(kind, kind)
    path = write(tmp_path / f"data.{suffix}", rows, kind)
    with Client(server.address, user="up") as client:
        d = client.upload_dataset(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (d.name, d.sha256, d.format, d.rows, d.bad_row_count) == (f"datasets/{digest}", digest, fmt, len(rows), 0)
    assert d.filename == path.name and d.size_bytes == path.stat().st_size
    normalized = [json.loads(line) for line in
                  (server.home / "datasets" / digest / "data.jsonl").read_text().splitlines()]
    assert len(normalized) == len(rows) and all(set(r) == columns for r in normalized)
    assert all(m["role"] in ("system", "user", "assistant") for r in normalized for v in r.values() for m in v)


def test_bad_rows_are_reported_with_their_line_numbers(server, tmp_path):
    lines = [json.dumps({"messages": CHAT}), json.dumps({"messages": CHAT}), '{"messages": [{"role": "us',
             json.dumps({"messages": CHAT}), json.dumps({"messages": [{"role": "wizard", "content": "x"}]}),
             "", json.dumps({"messages": CHAT})]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with Client(server.address, user="up") as client:
        d = client.upload_dataset(path)
    assert d.format == "messages" and d.rows == 4 and d.bad_row_count == 2
    assert [(b.line, "JSON" in b.reason or "role" in b.reason) for b in d.bad_rows] == [(3, True), (5, True)]
    assert "wizard" in d.bad_rows[1].reason


def test_same_content_is_stored_once_and_trains_by_name(server, tmp_path, tiny_model):
    rows = [{"instruction": f"Repeat {w}", "output": w} for w in ("apple", "pear", "plum", "fig")] * 8
    path = write(tmp_path / "alpaca.csv", rows, "csv")
    copy = tmp_path / "renamed-copy.csv"
    copy.write_bytes(path.read_bytes())
    with Client(server.address, user="up") as client:
        first = client.upload_dataset(path)
        second = client.upload_dataset(copy)
        assert second.name == first.name and second.filename == "alpaca.csv"  # the stored one, unchanged
        stored = [p for p in (server.home / "datasets").iterdir() if p.name == first.sha256]
        assert len(stored) == 1 and sorted(p.name for p in stored[0].iterdir()) == \
            ["data.jsonl", "original.csv", "owners", "report.json"]
        job = client.create_job({"base_model": str(tiny_model), "dataset": {"uri": first.name},
                                 "max_steps": 3, "max_seq_length": 64, "eval_strategy": "no", "save_steps": 0})
        assert job.preflight.dataset.rows == 32 and job.preflight.dataset.format == "prompt_completion"
        done = client.wait(job.name, timeout=240)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, (done.state_reason, done.error.message)


def _raw_upload(server, messages):
    with grpc.insecure_channel(server.address) as channel:
        stub = artifact_service_pb2_grpc.ArtifactServiceStub(channel)
        return stub.UploadDataset(iter(messages), metadata=(("x-ftlab-user", "up"),), timeout=60)


def _leftovers(server) -> set[str]:
    root = server.home / "datasets"
    incoming = root / ".incoming"
    return {p.name for p in root.iterdir()} | ({p.name for p in incoming.iterdir()} if incoming.exists() else set())


def test_refused_uploads_leave_nothing_behind(server, tmp_path):
    before = _leftovers(server)
    block = (json.dumps({"messages": CHAT}) + "\n").encode() * 4096  # ~350 KB
    meta = lambda **kw: apb.UploadDatasetRequest(metadata=apb.UploadMetadata(filename="big.jsonl", **kw))
    chunks = [apb.UploadDatasetRequest(chunk=block)] * (UPLOAD_LIMIT // len(block) + 2)
    cases = {
        "declared over the limit": ([meta(size_bytes=UPLOAD_LIMIT + 1)], grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
        "streamed over the limit": ([meta()] + chunks, grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
        "wrong sha256": ([meta(sha256="0" * 64), chunks[0]], grpc.StatusCode.INVALID_ARGUMENT, "metadata.sha256"),
        "wrong size": ([meta(size_bytes=7), chunks[0]], grpc.StatusCode.INVALID_ARGUMENT, "metadata.size_bytes"),
        "not a dataset type": ([apb.UploadDatasetRequest(metadata=apb.UploadMetadata(filename="x.exe")), chunks[0]],
                               grpc.StatusCode.INVALID_ARGUMENT, "metadata.filename"),
        "chunk before metadata": ([chunks[0]], grpc.StatusCode.INVALID_ARGUMENT, "metadata"),
        "empty": ([meta()], grpc.StatusCode.INVALID_ARGUMENT, "chunk"),
        "no known columns": ([meta(), apb.UploadDatasetRequest(chunk=b'{"text": "just text"}\n' * 10)],
                             grpc.StatusCode.INVALID_ARGUMENT, "chunk"),
    }
    for what, (messages, code, field) in cases.items():
        with pytest.raises(grpc.RpcError) as err:
            _raw_upload(server, messages)
        assert err.value.code() == code, (what, err.value.details())
        if field:
            assert field in str(err.value.trailing_metadata()), what
    assert _leftovers(server) == before  # no partial file, no dataset folder

    # a file name is only a file type: a traversal try is stored by content, inside the store
    evil = tmp_path / "x.jsonl"
    evil.write_text(json.dumps({"messages": CHAT}) + "\n")
    d = _raw_upload(server, [apb.UploadDatasetRequest(metadata=apb.UploadMetadata(filename="../../../etc/cron.d/x.jsonl")),
                             apb.UploadDatasetRequest(chunk=evil.read_bytes())]).dataset
    assert d.filename == "x.jsonl" and (server.home / "datasets" / d.sha256 / "original.jsonl").exists()


def test_cli_upload_prints_the_report(server, tmp_path):
    path = tmp_path / "cli.jsonl"
    path.write_text("".join(json.dumps({"messages": CHAT, "n": i}) + "\n" for i in range(3)) + "oops\n")
    run = subprocess.run([sys.executable, "-m", "services.cli.main", "--address", server.address, "upload", str(path),
                          "-q"], capture_output=True, text=True, env={**os.environ, "FTLAB_USER": "up"})
    assert run.returncode == 0, run.stderr
    assert "format messages, 3 rows usable, 1 bad" in run.stdout and "line 4" in run.stdout
    assert "datasets/" + hashlib.sha256(path.read_bytes()).hexdigest() in run.stdout


def test_each_user_lists_their_own_uploads_newest_first(server, tmp_path):
    first = write(tmp_path / "first.jsonl", [{"messages": CHAT}] * 3, "jsonl")
    second = write(tmp_path / "second.csv", [{"prompt": "p", "completion": "c"}] * 5, "csv")
    with Client(server.address, user="lister") as client:
        assert client.list_datasets() == []
        a = client.upload_dataset(first)
        b = client.upload_dataset(second)
        listed = client.list_datasets()
    assert [d.name for d in listed] == [b.name, a.name]
    assert [(d.filename, d.format, d.rows, d.bad_row_count) for d in listed] == \
        [("second.csv", "prompt_completion", 5, 0), ("first.jsonl", "messages", 3, 0)]
    assert all(d.create_time.seconds > 0 and not d.bad_rows for d in listed)
    with Client(server.address, user="someone-else") as other:  # the same content, another owner: not theirs
        assert a.name not in {d.name for d in other.list_datasets()}
    env = {**os.environ, "FTLAB_USER": "lister"}
    shown = subprocess.run([sys.executable, "-m", "services.cli.main", "--address", server.address, "datasets"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "second.csv" in shown.stdout and "prompt_completion" in shown.stdout and b.sha256[:12] in shown.stdout
