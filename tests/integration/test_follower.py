"""The scheduler's follower watchdog, in one process with the real services (as `ftlab serve` runs
them): a run whose follower dies is followed again, and its job still ends as its run did, with
every step recorded once."""

from __future__ import annotations

import asyncio
import logging

import grpc

from ftlab.config import config_from_dict
from ftlab.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from services import runner, serve_settings
from tests.helpers import write_chat_dataset

pb = job_service_pb2


def test_a_run_whose_follower_died_is_followed_again(tmp_path, tiny_model, monkeypatch, caplog):
    home = tmp_path / "home"
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=64)
    monkeypatch.setenv("FTLAB_HOME", str(home))
    settings = serve_settings.from_args(runner.parser_for(list(runner.COMPONENTS)).parse_args(
        ["--port", "0", "--metrics-port", "0", "--cpu-threads", "1", "--shutdown-grace", "2", "--openai-port", "-1"]))
    config = config_from_dict({"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 20,
                               "per_device_train_batch_size": 2, "max_seq_length": 64, "logging_steps": 1,
                               "save_steps": 1000, "eval_strategy": "no"})

    async def scenario() -> tuple[job_pb2.Job, list[int]]:
        running = await runner.start(list(runner.COMPONENTS), settings)
        dispatcher = running.apps["scheduler"].dispatcher
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                stub = job_service_pb2_grpc.JobServiceStub(channel)
                job = (await stub.CreateJob(pb.CreateJobRequest(config=config), timeout=60)).job
                async for update in stub.WatchJob(pb.WatchJobRequest(name=job.name, follow=True), timeout=120):
                    if update.event.HasField("metrics"):
                        break  # training: the run is being followed
                (follower,) = dispatcher._followers.values()
                follower.cancel()  # as a bug would end it
                async for _ in stub.WatchJob(pb.WatchJobRequest(name=job.name, follow=True), timeout=180):
                    pass
                final = (await stub.GetJob(pb.GetJobRequest(name=job.name), timeout=10)).job
                events = (await stub.ListJobEvents(pb.ListJobEventsRequest(name=job.name, page_size=1000),
                                                   timeout=10)).events
                return final, [e.metrics.step for e in events if e.HasField("metrics")]
        finally:
            await running.stop(2.0)

    with caplog.at_level(logging.WARNING, logger="services.scheduler.dispatcher"):
        final, steps = asyncio.run(scenario())
    assert final.state == job_pb2.JOB_STATE_SUCCEEDED, final.state_reason
    assert steps == list(range(1, 21))
    assert any("had no follower" in r.getMessage() for r in caplog.records)

