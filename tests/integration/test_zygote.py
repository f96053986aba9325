"""The zygote: runs forked from a process that imported torch already are set up like exec'd ones,
and the trainer goes on with exec when the zygote is gone."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest
from google.protobuf import json_format

from ftlab.config import config_from_dict
from ftlab.v1 import events_pb2
from services.common.settings import Paths
from services.scheduler import jobconfig
from services.trainer.process import read_events, read_reports
from services.trainer.supervisor import RunSupervisor
from services.trainer.zygote import ForkedProcess, Zygote, command_line
from tests.helpers import write_chat_dataset

pytestmark = pytest.mark.slow


def write_spec(tmp_path: Path, tiny_model: Path, max_steps: int) -> Path:
    data = tmp_path / "chat.jsonl"
    write_chat_dataset(data, rows=32)
    config = jobconfig.resolve("basic", config_from_dict({
        "base_model": str(tiny_model), "dataset": {"uri": str(data)}, "max_steps": max_steps,
        "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "max_seq_length": 64, "save_steps": 0}))
    run_dir = tmp_path / "job" / "runs" / "job-1"
    run_dir.mkdir(parents=True)
    spec = run_dir / "spec.json"
    spec.write_text(json.dumps({"config": json_format.MessageToDict(config, preserving_proto_field_name=True),
                                "job_dir": str(tmp_path / "job"), "checkpoints_dir": str(tmp_path / "job" / "checkpoints")}))
    return spec


def home_and_config(tmp_path: Path, tiny_model: Path, max_steps: int):
    """A trainer's home with chat.jsonl in its datasets, and a resolved config that trains on it."""
    paths = Paths(tmp_path / "home").ensure()
    write_chat_dataset(paths.datasets / "chat.jsonl", rows=32)
    return paths, jobconfig.resolve("basic", config_from_dict({
        "base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": max_steps,
        "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "max_seq_length": 64, "save_steps": 0}))


def cmdline(pid: int) -> list[str]:
    return open(f"/proc/{pid}/cmdline", "rb").read().decode().rstrip("\0").split(" ")


def alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().split()[2] != "Z"
    except OSError:
        return False


def test_a_forked_run_is_set_up_like_an_execd_one(tmp_path, tiny_model):
    spec = write_spec(tmp_path, tiny_model, max_steps=4)
    run_dir = spec.parent

    async def scenario():
        zygote = Zygote()
        await zygote.start(dict(os.environ))
        read_fd, write_fd = os.pipe()
        with (run_dir / "train.log").open("ab") as log:
            child = await zygote.spawn(str(spec), dict(os.environ), str(run_dir), log.fileno(), write_fd)
        os.close(write_fd)
        deadline = time.monotonic() + 10
        while "services.trainer.child" not in cmdline(child.pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        seen = {"cmdline": cmdline(child.pid), "session": os.getsid(child.pid),
                "cwd": os.readlink(f"/proc/{child.pid}/cwd"), "parent": int(open(f"/proc/{child.pid}/stat").read().split()[3])}
        events = await asyncio.to_thread(lambda: read_events(os.fdopen(read_fd, "rb")))
        code = await child.wait()
        await zygote.close()
        return child, seen, events, code, zygote

    child, seen, events, code, zygote = asyncio.run(scenario())
    assert code == 0, (run_dir / "train.log").read_text()[-3000:]
    assert seen["cmdline"] == command_line(str(spec), int(seen["cmdline"][-1])), seen  # what `ps` shows
    assert seen["session"] == child.pid, "its own session: cancel kills its process group"
    assert seen["cwd"] == str(run_dir)
    assert seen["parent"] == zygote.process.pid
    assert [int(e["metrics"]["step"]) for e in events if "metrics" in e] == [1, 2, 3, 4]
    assert events[-1]["result"]["outcome"] == "RUN_OUTCOME_SUCCEEDED"
    log = (run_dir / "train.log").read_text()
    assert "ftlab: precision = fp32" in log, "the child's output goes to the run's log"
    assert zygote.process.returncode == 0, "the zygote exits when the trainer lets it go"


def test_runs_die_with_the_zygote_and_the_next_run_starts_with_exec_on_its_share_of_the_cores(tmp_path, tiny_model):
    spec = write_spec(tmp_path, tiny_model, max_steps=100000)
    paths, config = home_and_config(tmp_path, tiny_model, max_steps=3)

    async def scenario():
        supervisor = RunSupervisor(paths, max_runs=2, preload=True, cpu_threads=1)
        await supervisor.warm_up()
        read_fd, write_fd = os.pipe()
        with (spec.parent / "train.log").open("ab") as log:
            forked = await supervisor.zygote.spawn(str(spec), dict(os.environ), str(spec.parent), log.fileno(), write_fd)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:  # wait until it trains
            reports = read_reports(pipe)
            while not (await asyncio.to_thread(next, reports)).event.HasField("metrics"):
                pass
            supervisor.zygote.process.send_signal(signal.SIGKILL)
            code = await asyncio.wait_for(forked.wait(), 30)
            deadline = time.monotonic() + 10
            while alive(forked.pid) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            orphan_alive = alive(forked.pid)
        run = await supervisor.start("00000000000000aa-2", "00000000000000aa", config, "")
        await asyncio.wait_for(run.process.wait(), 300)
        async with run.changed:  # the supervisor says when the run's end is recorded
            await asyncio.wait_for(run.changed.wait_for(lambda: run.done), 60)
        await supervisor.close()
        return code, orphan_alive, run

    code, orphan_alive, run = asyncio.run(scenario())
    assert code == -signal.SIGKILL
    assert not orphan_alive, "a forked run dies with its zygote (which dies with the trainer)"
    assert not isinstance(run.process, ForkedProcess), "with no zygote the run is started with exec"
    finished = run.events[-1].finished
    assert finished.outcome == events_pb2.RUN_OUTCOME_SUCCEEDED, run.log_path.read_text()[-3000:]
    assert "cpu_threads=1" in run.log_path.read_text(), "the run trains on the trainer's share of the cores"


def test_a_signal_to_a_process_not_yet_in_its_own_session_still_reaches_it():
    """A forked child makes its own session a moment after the fork: a cancel in that moment must not
    be lost because its process group does not exist yet."""
    import subprocess

    from services.trainer.runs import kill_group

    proc = subprocess.Popen(["sleep", "60"])  # in our own process group, not a group of its own
    try:
        kill_group(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == -signal.SIGTERM
    finally:
        proc.kill()


def test_runs_cancelled_as_they_start_end_cancelled(tmp_path, tiny_model):
    """A cancel right after StartRun, while the forked child is still becoming the run, ends it as
    cancelled each time; none trains on to success."""
    paths, config = home_and_config(tmp_path, tiny_model, max_steps=30)

    async def scenario():
        supervisor = RunSupervisor(paths, max_runs=1, preload=True, cpu_threads=1)
        await supervisor.warm_up()
        outcomes = []
        for i in range(4):
            run = await supervisor.start(f"00000000000000c{i}-1", f"00000000000000c{i}", config, "")
            await supervisor.stop(run.run_id, "cancel", None)
            await asyncio.wait_for(run.process.wait(), 120)
            async with run.changed:
                await asyncio.wait_for(run.changed.wait_for(lambda: run.done), 60)
            outcomes.append(run.events[-1].finished.outcome)
        await supervisor.close()
        return outcomes

    assert asyncio.run(scenario()) == [events_pb2.RUN_OUTCOME_CANCELLED] * 4
