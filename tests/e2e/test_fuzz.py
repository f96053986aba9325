"""The fuzzer: Hypothesis builds requests for every RPC of every service from the descriptors (with
values chosen to hurt: NUL, huge and path-like text, NaN and infinities, int64 edges, unknown enum
numbers, deep nesting) and sends raw bytes that are no protobuf at all. No call may end INTERNAL or
UNKNOWN, every INVALID_ARGUMENT names a field, and the servers answer normally afterwards.

`make test` sends about FTLAB_FUZZ_REQUESTS=1200 requests; `make fuzz` sends 15,000 with a fresh seed.
The counts of requests and codes are printed at the end.
"""

from __future__ import annotations

import collections
import math
import os

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from ftlab import Client
from ftlab.v1 import analyzer_pb2, artifact_service_pb2, job_service_pb2, trainer_service_pb2
from tests.helpers import start_server, write_chat_dataset

pytestmark = pytest.mark.slow
FILES = (job_service_pb2, artifact_service_pb2, analyzer_pb2, trainer_service_pb2)
METHODS = [(s, m) for f in FILES for s in f.DESCRIPTOR.services_by_name.values() for m in s.methods]
REQUESTS = int(os.environ.get("FTLAB_FUZZ_REQUESTS", "1200"))
SEED = int(os.environ.get("FTLAB_FUZZ_SEED", "20261202"))
PER_METHOD = max(10, REQUESTS // (len(METHODS) + 1))
CODES: collections.Counter = collections.Counter()
BAD: list[str] = []

# mostly values a service accepts, so that requests get past the first check and reach the code behind it;
# now and then a hostile one
PLAUSIBLE_TEXT = st.sampled_from([
    "", "jobs/0123456789abcdef", "checkpoint-1", "checkpoint-2", "best", "latest", "datasets/" + "0" * 64, "0" * 64,
    "chat.jsonl", "x.csv", "x.parquet", "x.json", "Qwen/Qwen2.5-0.5B", "org/model", "q_proj", "default", "basic",
    "0123456789abcdef", "0123456789abcdef-1", "run", "127.0.0.1:1", "CUDA_OOM", "DATASET_NOT_FOUND", "{}",
    '{"base_model": "org/model", "dataset": {"uri": "chat.jsonl"}}', '{"dataset": {"uri": "/etc"}}',
    "{{ messages[0]['content'] }}", "Traceback (most recent call last):\nValueError: x", "{'loss': 1.0}"])
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40), st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
    st.sampled_from(["\x00", "a\x00b", "jobs/", "jobs/../../etc", "../../etc/passwd", "/etc/passwd", "/", ".", "..",
                     "checkpoint-99999999999999999", "{{ raise_exception('x') }}", "{% for i in range(99999) %}",
                     "{% for m in messages %}{{ m.content }", "{'loss'}", "{'loss': " + "[" * 300 + "]" * 300 + "}",
                     "[" * 500, "{" * 500, "%2e%2e%2f", "C:\\Windows", "\ud7ff", "😀" * 20, "/dev/zero", "/proc/self/environ"]),
    st.integers(1, 3).map(lambda n: "x" * (4096 * n + 1)),
)
TEXT = st.one_of(PLAUSIBLE_TEXT, PLAUSIBLE_TEXT, st.text(alphabet="abcdef0123456789-_/.", max_size=20), HOSTILE_TEXT)
DOUBLES = st.one_of(st.floats(-1e6, 1e6), st.floats(0, 10), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1e300, 1e12, -0.0, 0.0, 5e-324]))
INT64 = st.one_of(st.integers(-10, 1000), st.integers(-10, 1000), st.integers(-(2 ** 63), 2 ** 63 - 1),
                  st.sampled_from([0, -1, 1, 2 ** 31 - 1, -(2 ** 31), 2 ** 63 - 1]))
INT32 = st.one_of(st.integers(-10, 1000), st.integers(-10, 1000), st.integers(-(2 ** 31), 2 ** 31 - 1),
                  st.sampled_from([0, -1, 1, 2 ** 31 - 1, -(2 ** 31)]))
_INTS = {FieldDescriptor.TYPE_INT64: INT64, FieldDescriptor.TYPE_SINT64: INT64, FieldDescriptor.TYPE_SFIXED64: INT64,
         FieldDescriptor.TYPE_INT32: INT32, FieldDescriptor.TYPE_SINT32: INT32, FieldDescriptor.TYPE_SFIXED32: INT32,
         FieldDescriptor.TYPE_UINT32: st.integers(0, 2 ** 32 - 1), FieldDescriptor.TYPE_UINT64: st.integers(0, 2 ** 64 - 1)}


def scalar(field: FieldDescriptor):
    if field.type == FieldDescriptor.TYPE_STRING:
        return TEXT
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return DOUBLES
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.sampled_from(known), st.integers(-5, 200))
    return _INTS[field.type]


@st.composite
def message(draw, descriptor, depth: int = 0):
    """A message of `descriptor` with a random subset of its fields set to hostile values."""
    out = message_factory.GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_field, value_field = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            for _ in range(draw(st.integers(0, 3))):
                key = draw(scalar(key_field))
                target = getattr(out, field.name)
                if value_field.message_type is not None:
                    if depth < 3:
                        target[key].CopyFrom(draw(message(value_field.message_type, depth + 1)))
                else:
                    target[key] = draw(scalar(value_field))
        elif field.is_repeated:
            for _ in range(draw(st.integers(0, 3))):
                if field.message_type is not None:
                    if depth < 3:
                        getattr(out, field.name).add().CopyFrom(draw(message(field.message_type, depth + 1)))
                else:
                    getattr(out, field.name).append(draw(scalar(field)))
        elif field.message_type is not None:
            if depth < 3:
                getattr(out, field.name).CopyFrom(draw(message(field.message_type, depth + 1)))
        else:
            setattr(out, field.name, draw(scalar(field)))
    return out


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Scheduler, analyzer and artifacts in one process (jobs the fuzzer makes stay queued: no trainer
    there), and a trainer alone (registered with nobody), so no fuzzed job ever trains."""
    home = tmp_path_factory.mktemp("fuzz-home")
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=16)
    main = start_server(home, name="fuzz", args=["--only", "scheduler", "--only", "analyzer", "--only", "artifacts"])
    trainer = start_server(home, module="services.trainer", name="fuzz-trainer", args=["--no-preload"])
    yield {"ftlab.v1.TrainerService": trainer}, main
    print(f"\nfuzz: {sum(CODES.values())} requests (seed {SEED}); codes: "
          + ", ".join(f"{code} {n}" for code, n in CODES.most_common()))
    assert main.stop() == 0, main.log()
    assert trainer.stop() == 0, trainer.log()


def named_field(err: grpc.RpcError) -> bool:
    status = rpc_status.from_call(err)
    bad = error_details_pb2.BadRequest()
    return any(d.Unpack(bad) and any(v.field for v in bad.field_violations) for d in (status.details if status else ()))


def send(server, service, method, request, raw: bytes | None = None) -> None:
    path = f"/{service.full_name}/{method.name}"
    out = message_factory.GetMessageClass(method.output_type)
    serialize = (lambda _: raw) if raw is not None else (lambda m: m.SerializeToString())
    with grpc.insecure_channel(server.address, options=[("grpc.max_receive_message_length", 64 << 20)]) as channel:
        try:
            if method.client_streaming:
                requests = iter(request if isinstance(request, list) else [request])
                call = channel.stream_stream if method.server_streaming else channel.stream_unary
                result = call(path, serialize, out.FromString)(requests, timeout=10)
            else:
                call = channel.unary_stream if method.server_streaming else channel.unary_unary
                result = call(path, serialize, out.FromString)(request, timeout=10)
            if method.server_streaming:
                for _ in result:
                    pass
            CODES["OK"] += 1
        except grpc.RpcError as err:
            code = err.code()
            CODES[code.name] += 1
            if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS):
                BAD.append(f"{method.name}: {code.name} {err.details()!r} for {str(request)[:300]!r}")
            elif code == grpc.StatusCode.INVALID_ARGUMENT and not named_field(err):
                BAD.append(f"{method.name}: INVALID_ARGUMENT naming no field: {err.details()!r}")


@pytest.mark.parametrize("service,method", METHODS, ids=[f"{s.name}.{m.name}" for s, m in METHODS])
def test_no_request_gets_internal(servers, service, method):
    by_service, main = servers
    server = by_service.get(service.full_name, main)
    BAD.clear()

    @seed(SEED)
    @settings(max_examples=PER_METHOD, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def fuzz(data):
        if method.client_streaming:
            request = data.draw(st.lists(message(method.input_type), min_size=0, max_size=3))
        else:
            request = data.draw(message(method.input_type))
        send(server, service, method, request)

    fuzz()
    assert not BAD, "\n".join(BAD[:20])


def test_raw_bytes_are_invalid_argument_and_the_servers_still_serve(servers):
    by_service, main = servers
    BAD.clear()

    @seed(SEED)
    @settings(max_examples=PER_METHOD, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(raw=st.binary(min_size=1, max_size=256), index=st.integers(0, len(METHODS) - 1))
    def fuzz(raw, index):
        service, method = METHODS[index]
        send(by_service.get(service.full_name, main), service, method,
             [None] if method.client_streaming else None, raw=raw)

    fuzz()
    assert not BAD, "\n".join(BAD[:20])
    with Client(main.address, timeout=30) as client:  # healthy afterwards
        assert client.list_templates()
        job = client.create_job({"base_model": "org/model", "dataset": {"uri": "chat.jsonl"}}, validate_only=True)
        assert job.preflight.checks


ROW = st.fixed_dictionaries({}, optional={
    "messages": st.one_of(st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "x"]),
                                                          "content": st.one_of(st.text(max_size=20), st.integers())}),
                                   max_size=3), st.text(max_size=10), st.none()),
    "prompt": st.one_of(st.text(max_size=10), st.lists(st.integers(), max_size=2)), "completion": st.text(max_size=10),
    "chosen": st.text(max_size=5), "rejected": st.one_of(st.text(max_size=5), st.floats()),
    "instruction": st.text(max_size=5), "output": st.one_of(st.text(max_size=5), st.none())})


@st.composite
def dataset_file(draw) -> tuple[str, bytes]:
    """A dataset file as a careless or hostile user might send one."""
    import csv
    import io
    import json

    kind = draw(st.sampled_from(["jsonl", "json", "csv", "parquet"]))
    rows = draw(st.lists(ROW, max_size=6))
    shape = draw(st.sampled_from(["rows", "numbers", "nested", "bytes", "long field", "ragged", "bad utf-8",
                                  "surrogates"]))
    if shape == "numbers":
        return kind, json.dumps([1, 2, 3]).encode()
    if shape == "nested":
        depth = draw(st.integers(1000, 120_000))
        return kind, ("[" * depth + "]" * depth if draw(st.booleans()) else '{"a":' * depth + "1" + "}" * depth).encode()
    if shape == "bytes":
        return kind, draw(st.binary(min_size=1, max_size=300))
    if shape == "bad utf-8":
        return kind, b'{"prompt": "a\xff\xfe", "completion": "b"}\n' + json.dumps({"prompt": "a", "completion": "b"}).encode()
    if shape == "surrogates":
        return kind, b'{"prompt": "\\ud800", "completion": "b"}\n'
    if kind == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["prompt", "completion"])
        if shape == "long field":
            writer.writerow(["x" * 200_000, "y"])
        elif shape == "ragged":
            writer.writerow(["a", "b", "c", "d"])
        for r in rows:
            writer.writerow([json.dumps(v) if not isinstance(v, str) else v for v in r.values()])
        return kind, out.getvalue().encode()
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = io.BytesIO()
        pq.write_table(pa.table({"prompt": ["a", "b"], "completion": ["c", json.dumps(rows)[:50]]}), sink)
        data = sink.getvalue()
        return kind, data if draw(st.booleans()) else data[: draw(st.integers(1, len(data)))]
    text = "\n".join(json.dumps(r) for r in rows)
    if shape == "long field":
        text += "\n" + json.dumps({"prompt": "x" * 200_000, "completion": "y"})
    return kind, (json.dumps(rows) if kind == "json" and shape == "ragged" else text).encode()


def test_dataset_files_never_break_uploads_or_preflight(servers):
    from ftlab.v1 import artifact_service_pb2 as apb

    _, main = servers
    BAD.clear()
    names = [(s, m) for s, m in METHODS if m.name in ("UploadDataset", "Preflight")]
    upload_service, upload = next((s, m) for s, m in names if m.name == "UploadDataset")
    count = 0

    @seed(SEED)
    @settings(max_examples=max(30, REQUESTS // 40), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(file=dataset_file())
    def fuzz(file):
        nonlocal count
        kind, data = file
        send(main, upload_service, upload, [apb.UploadDatasetRequest(metadata=apb.UploadMetadata(filename=f"f.{kind}")),
                                            apb.UploadDatasetRequest(chunk=data)])
        path = main.home / "datasets" / f"fuzz.{kind}"
        path.write_bytes(data)
        with Client(main.address, user="fuzz", timeout=60) as client:  # pre-flight reads it as training would
            try:
                client.create_job({"base_model": "org/model", "dataset": {"uri": path.name}}, validate_only=True)
                CODES["OK"] += 1
            except Exception as err:
                code = getattr(err, "code", None)
                CODES[getattr(code, "name", "ERROR")] += 1
                if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, None):
                    BAD.append(f"pre-flight of {kind} {data[:80]!r}: {err}")
        count += 2

    fuzz()
    assert not BAD, "\n".join(BAD[:20])
    assert count > 0
