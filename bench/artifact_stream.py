"""Stream model artifacts of 100 MB, 1 GB and 4 GB over loopback gRPC, and compare with a naive
in-memory zip.

    .venv/bin/python bench/artifact_stream.py [--sizes 100M,1G,4G] [--dir DIR]

For each size, a job (created through the real scheduler) gets a `model/` folder holding one
safetensors-sized file of random bytes and a config.json. Then, each in a fresh process so that its
peak RSS (VmHWM) is its own:
- the artifacts service (`python -m services.artifacts`): a cold download (CRC-32 and sha256 computed
  while streaming) and a warm one (digests remembered);
- a naive server with the same RPC that builds the zip in a BytesIO (Python's zipfile, stored) and
  then sends it, as the seeds did.
The client is a plain Python gRPC client on the same machine that counts the bytes and discards them.
Prints throughput (archive MB/s) and peak RSS, and saves bench/results/artifact_stream.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "sdk" / "python")]

import grpc  # noqa: E402

from ftlab import Client  # noqa: E402
from ftlab.v1 import artifact_service_pb2 as apb  # noqa: E402
from ftlab.v1 import artifact_service_pb2_grpc  # noqa: E402
from tests.helpers import start_server, write_chat_dataset  # noqa: E402

UNITS = {"M": 10**6, "G": 10**9}
MIB = 1 << 20


def parse_size(text: str) -> int:
    return int(float(text[:-1]) * UNITS[text[-1].upper()])


def peak_rss(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def write_model(folder: Path, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    block = os.urandom(64 * MIB)
    with open(folder / "model.safetensors", "wb") as f:
        left = size
        while left:
            f.write(block[:min(left, len(block))])
            left -= min(left, len(block))
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 896}, indent=2))


def download(address: str, job: str, user: str) -> tuple[int, float]:
    options = [("grpc.max_receive_message_length", 64 * MIB)]
    with grpc.insecure_channel(address, options=options) as channel:
        stub = artifact_service_pb2_grpc.ArtifactServiceStub(channel)
        start = time.perf_counter()
        n = 0
        for m in stub.DownloadArtifact(apb.DownloadArtifactRequest(job=job, kind=apb.ARTIFACT_KIND_MODEL),
                                       metadata=(("x-ftlab-user", user),), timeout=3600):
            n += len(m.chunk)
        return n, time.perf_counter() - start


NAIVE_SERVER = r'''
import io, os, sys, zipfile
from concurrent import futures
from pathlib import Path
import grpc
sys.path[:0] = [sys.argv[3]]
from ftlab.v1 import artifact_service_pb2 as apb, artifact_service_pb2_grpc

class Naive(artifact_service_pb2_grpc.ArtifactServiceServicer):
    def DownloadArtifact(self, request, context):
        folder = Path(sys.argv[2])
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            for p in sorted(folder.iterdir()):
                z.write(p, f"model/{p.name}")
        data = buf.getbuffer()
        yield apb.DownloadArtifactResponse(header=apb.DownloadHeader(total_size_bytes=len(data)))
        for i in range(0, len(data), 1 << 20):
            yield apb.DownloadArtifactResponse(chunk=bytes(data[i:i + (1 << 20)]))

server = grpc.server(futures.ThreadPoolExecutor(4))
artifact_service_pb2_grpc.add_ArtifactServiceServicer_to_server(Naive(), server)
server.add_insecure_port("127.0.0.1:" + sys.argv[1])
server.start()
print("ready", flush=True)
server.wait_for_termination()
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100M,1G,4G")
    parser.add_argument("--dir", default=None, help="where to put the test data (default: a temporary folder)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "artifact_stream.json"))
    args = parser.parse_args()
    import subprocess

    from tests.helpers import free_port

    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        home = Path(tmp) / "home"
        write_chat_dataset(home / "datasets" / "chat.jsonl", rows=8)
        sched = start_server(home, module="services.scheduler", name="scheduler")
        try:
            for text in args.sizes.split(","):
                size = parse_size(text)
                with Client(sched.address, user="bench") as client:
                    job = client.create_job({"base_model": str(home / "no-model"), "dataset": {"uri": "chat.jsonl"}},
                                            force=True, display_name=f"stream {text}")
                folder = home / "artifacts" / "jobs" / job.name.removeprefix("jobs/") / "model"
                write_model(folder, size)
                row = {"size": text, "artifact_bytes": size}
                art = start_server(home, module="services.artifacts", name="artifacts",
                                   args=["--scheduler", sched.address])
                try:
                    for label in ("cold", "warm"):
                        n, seconds = download(art.address, job.name, "bench")
                        row[f"{label}_archive_bytes"] = n
                        row[f"{label}_seconds"] = round(seconds, 3)
                        row[f"{label}_MBps"] = round(n / seconds / 1e6, 1)
                    row["service_peak_rss_bytes"] = peak_rss(art.proc.pid)
                finally:
                    art.stop()
                port = free_port()
                naive = subprocess.Popen([sys.executable, "-c", NAIVE_SERVER, str(port), str(folder),
                                          str(ROOT / "sdk" / "python")], stdout=subprocess.PIPE, text=True)
                try:
                    naive.stdout.readline()
                    n, seconds = download(f"127.0.0.1:{port}", job.name, "bench")
                    row.update(naive_seconds=round(seconds, 3), naive_MBps=round(n / seconds / 1e6, 1),
                               naive_peak_rss_bytes=peak_rss(naive.pid))
                finally:
                    naive.kill()
                    naive.wait()
                for f in folder.iterdir():
                    f.unlink()
                rows.append(row)
                print(f"{text:>5}: ours cold {row['cold_MBps']:7.1f} MB/s, warm {row['warm_MBps']:7.1f} MB/s, "
                      f"peak RSS {row['service_peak_rss_bytes'] / MIB:7.1f} MiB | naive {row['naive_MBps']:7.1f} MB/s, "
                      f"peak RSS {row['naive_peak_rss_bytes'] / MIB:7.1f} MiB", flush=True)
        finally:
            sched.stop()
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "python": platform.python_version(),
              "grpc": grpc.__version__, "rows": rows}
    if len(rows) > 1:
        result["rss_growth_largest_vs_smallest_bytes"] = rows[-1]["service_peak_rss_bytes"] - rows[0]["service_peak_rss_bytes"]
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
