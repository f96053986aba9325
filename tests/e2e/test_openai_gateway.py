"""The official `openai` Python package, pointed at `ftlab serve`'s gateway with `base_url`, runs
OpenAI's documented fine-tuning flow unchanged: upload, create, poll, events (listed and streamed),
checkpoints, the results file, cancel, pause and resume, a failed job's error, DPO, chat completions
with the fine-tuned model; and its typed errors for bad requests, a wrong key and another user's job."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from tests.helpers import start_server

pytestmark = pytest.mark.slow
TOKENS = {"tokens": [{"user": "alice", "role": "user", "token": "key-alice"},
                     {"user": "bob", "role": "user", "token": "key-bob"}]}
DONE = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, tiny_model):
    home = tmp_path_factory.mktemp("openai-home")
    (home / "tokens.json").write_text(json.dumps(TOKENS))
    server = start_server(home, ["--cpu-threads", "1"], name="openai", env={
        "FTLAB_TOKENS_FILE": str(home / "tokens.json"), "FTLAB_SERVICE_TOKEN": "key-service",
        "FTLAB_MODEL_ROOTS": str(tiny_model.parent), "FTLAB_OPENAI_MODELS": f"tiny-chat={tiny_model}"})
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("openai-files")
    chat = folder / "chat.jsonl"
    chat.write_text("".join(json.dumps({"messages": [{"role": "system", "content": "You add numbers."},
                                                     {"role": "user", "content": f"What is {a} plus {a + 1}?"},
                                                     {"role": "assistant", "content": str(2 * a + 1)}]}) + "\n"
                            for a in range(40)))
    dpo = folder / "preferences.jsonl"
    dpo.write_text("".join(json.dumps({"input": {"messages": [{"role": "user", "content": f"{a} plus {a}?"}]},
                                       "preferred_output": [{"role": "assistant", "content": str(2 * a)}],
                                       "non_preferred_output": [{"role": "assistant", "content": "no idea"}]}) + "\n"
                           for a in range(32)))
    return chat, dpo


def wait(client: OpenAI, job_id: str, until=DONE, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while (job := client.fine_tuning.jobs.retrieve(job_id)).status not in until:
        assert time.monotonic() < deadline, f"{job_id} still {job.status}"
        time.sleep(0.5)  # polling, as OpenAI's documented flow does
    return job


def test_openais_documented_flow_runs_unchanged(gateway, files):
    chat, _ = files
    client = OpenAI(base_url=gateway.openai_url, api_key="key-alice")
    uploaded = client.files.create(file=chat.open("rb"), purpose="fine-tune")
    assert uploaded.id.startswith("file-") and uploaded.purpose == "fine-tune" and uploaded.bytes == chat.stat().st_size
    assert client.files.retrieve(uploaded.id).filename == "chat.jsonl"
    assert uploaded.id in [f.id for f in client.files.list()]
    assert client.files.content(uploaded.id).read() == chat.read_bytes()

    job = client.fine_tuning.jobs.create(model="tiny-chat", training_file=uploaded.id, validation_file=uploaded.id,
                                         hyperparameters={"n_epochs": 1, "batch_size": 4}, suffix="adder", seed=7,
                                         metadata={"team": "nlp"})
    assert job.id.startswith("ftjob-") and job.status == "queued" and job.model == "tiny-chat"
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size, job.seed) == (1, 4, 7)
    assert job.metadata == {"team": "nlp"} and job.method.type == "supervised"
    assert job.id in [j.id for j in client.fine_tuning.jobs.list(limit=5)]
    done = wait(client, job.id)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:tiny-chat:adder:{job.id.removeprefix('ftjob-')}"
    assert done.finished_at >= done.created_at and done.result_files

    events = list(client.fine_tuning.jobs.list_events(job.id, limit=1000))
    assert all(isinstance(e, openai.types.fine_tuning.FineTuningJobEvent) for e in events)
    assert events[0].created_at >= events[-1].created_at  # newest first
    metrics = [e.data for e in events if e.type == "metrics" and "train_loss" in e.data]
    assert metrics and all(m["train_loss"] > 0 for m in metrics)
    assert any("valid_loss" in e.data for e in events if e.type == "metrics")
    page = client.fine_tuning.jobs.list_events(job.id, limit=3)
    assert len(page.data) == 3 and page.has_more
    after = client.fine_tuning.jobs.list_events(job.id, limit=3, after=page.data[-1].id)
    assert after.data[0].id not in {e.id for e in page.data}

    with client.fine_tuning.jobs.with_streaming_response.list_events(job.id, extra_query={"stream": "true"}) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    streamed = [json.loads(line[6:]) for line in lines[:-1]]
    assert lines[-1] == "data: [DONE]" and streamed[0]["message"].startswith("Fine-tuning job created")
    assert {e["id"] for e in streamed} == {e.id for e in events}

    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert checkpoints and all(c.fine_tuned_model_checkpoint.startswith(done.fine_tuned_model + ":ckpt-step-")
                               for c in checkpoints)
    assert checkpoints[0].step_number >= checkpoints[-1].step_number and checkpoints[0].metrics.train_loss > 0
    results = client.files.content(done.result_files[0]).text
    assert results.startswith("step,train_loss,train_accuracy,valid_loss") and len(results.splitlines()) > 2

    reply = client.chat.completions.create(model=done.fine_tuned_model, max_completion_tokens=8,
                                           messages=[{"role": "user", "content": "What is 2 plus 3?"}])
    assert reply.choices[0].message.role == "assistant" and isinstance(reply.choices[0].message.content, str)
    assert reply.usage.completion_tokens > 0 and reply.choices[0].finish_reason in ("stop", "length")
    pieces = list(client.chat.completions.create(model=done.fine_tuned_model, max_completion_tokens=8, seed=1,
                                                 temperature=1.0, stream=True,
                                                 messages=[{"role": "user", "content": "What is 2 plus 3?"}]))
    assert pieces[-1].choices[0].finish_reason in ("stop", "length") and len(pieces) > 2
    checkpoint_reply = client.chat.completions.create(model=checkpoints[-1].fine_tuned_model_checkpoint,
                                                      max_completion_tokens=4, messages=[{"role": "user", "content": "Hi"}])
    assert checkpoint_reply.choices[0].message.content is not None


def test_cancel_pause_resume_and_a_failed_jobs_error(gateway, files):
    chat, _ = files
    client = OpenAI(base_url=gateway.openai_url, api_key="key-alice")
    training = client.files.create(file=chat.open("rb"), purpose="fine-tune")
    long = client.fine_tuning.jobs.create(model="tiny-chat", training_file=training.id,
                                          hyperparameters={"n_epochs": 50, "batch_size": 1})
    wait(client, long.id, until=("running",))
    paused = client.fine_tuning.jobs.pause(long.id)
    assert paused.id == long.id
    assert wait(client, long.id, until=("paused",)).status == "paused"
    assert client.fine_tuning.jobs.resume(long.id).status in ("queued", "running")
    wait(client, long.id, until=("running",))

    # a job whose file goes before it starts: queued behind the one training, then failing
    other = chat.with_name("other.jsonl")
    other.write_text(chat.read_text() + chat.read_text())  # other content: another upload of its own
    doomed_file = client.files.create(file=other.open("rb"), purpose="fine-tune")
    doomed = client.fine_tuning.jobs.create(model="tiny-chat", training_file=doomed_file.id)
    assert client.files.delete(doomed_file.id).deleted
    cancelled = client.fine_tuning.jobs.cancel(long.id)
    assert cancelled.id == long.id and wait(client, long.id).status == "cancelled"
    failed = wait(client, doomed.id)
    assert failed.status == "failed" and failed.error.param == "training_file"
    assert failed.error.code == "dataset_not_found" and failed.error.message
    analysis = client.get(f"/fine_tuning/jobs/{doomed.id}/analysis", cast_to=object)
    assert analysis["category"] == "dataset_not_found" and analysis["phase"] == "data prep" and analysis["suggestions"]
    retried = client.post(f"/fine_tuning/jobs/{doomed.id}/retry", cast_to=object, body={
        "apply_suggestions": True, "checkpoint": "none",
        "changes": {"dataset": {"uri": "datasets/" + training.id.removeprefix("file-")}, "max_steps": 2}})
    assert retried["ftlab"]["parent"] == doomed.id.replace("ftjob-", "jobs/") and retried["training_file"] == training.id
    assert wait(client, retried["id"]).status == "succeeded"


def test_dpo_through_the_method_field(gateway, files):
    _, dpo = files
    client = OpenAI(base_url=gateway.openai_url, api_key="key-alice")
    uploaded = client.files.create(file=dpo.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="tiny-chat", training_file=uploaded.id, method={
        "type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1, "batch_size": 4}}})
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.2
    assert wait(client, job.id).status == "succeeded"


def test_errors_are_openais_typed_errors(gateway, files):
    chat, _ = files
    alice = OpenAI(base_url=gateway.openai_url, api_key="key-alice")
    uploaded = alice.files.create(file=chat.open("rb"), purpose="fine-tune")
    for kwargs, param in (({"model": "", "training_file": uploaded.id}, "model"),
                          ({"model": "tiny-chat", "training_file": uploaded.id, "hyperparameters": {"n_epochs": 0}},
                           "hyperparameters.n_epochs"),
                          ({"model": "tiny-chat", "training_file": uploaded.id, "method": {"type": "reinforcement"}},
                           "method.type"),
                          ({"model": "tiny-chat", "training_file": "file-nope"}, "training_file")):
        with pytest.raises((openai.BadRequestError, openai.NotFoundError)) as err:
            alice.fine_tuning.jobs.create(**kwargs)
        assert err.value.body["param"] == param, (kwargs, err.value.body)
    with pytest.raises(openai.BadRequestError) as err:  # a refusal of the scheduler's, in OpenAI's words
        alice.fine_tuning.jobs.create(model="./tiny", training_file=uploaded.id)
    assert err.value.body["param"] == "model" and err.value.body["message"].startswith("model: "), err.value.body
    with pytest.raises(openai.BadRequestError) as err:
        alice.files.create(file=chat.open("rb"), purpose="assistants")
    assert err.value.body["param"] == "purpose"
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=gateway.openai_url, api_key="wrong").fine_tuning.jobs.list()
    job = alice.fine_tuning.jobs.list(limit=1).data[0]
    bob = OpenAI(base_url=gateway.openai_url, api_key="key-bob")
    with pytest.raises(openai.NotFoundError):
        bob.fine_tuning.jobs.retrieve(job.id)
    for bobs_try in (bob.files.retrieve, bob.files.content, bob.files.delete):  # DownloadDataset, DeleteDataset
        with pytest.raises(openai.NotFoundError):
            bobs_try(uploaded.id)
    assert alice.files.content(uploaded.id).read() == chat.read_bytes()  # still hers, whole
    assert job.id not in [j.id for j in bob.fine_tuning.jobs.list()]


NODE = Path(__file__).parent / "openai_node"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_the_node_openai_package_runs_the_same_flow(gateway, files):
    if not (NODE / "node_modules" / ".installed").exists():  # `make tools` does this; a bare pytest run too
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=NODE, check=True, timeout=600)
        (NODE / "node_modules" / ".installed").touch()
    chat, _ = files
    env = dict(os.environ, FTLAB_OPENAI_URL=gateway.openai_url, FTLAB_TOKEN="key-alice", FTLAB_OTHER_TOKEN="key-bob",
               FTLAB_MODEL="tiny-chat", FTLAB_TRAINING_FILE=str(chat))
    done = subprocess.run(["node", "flow.mjs"], cwd=NODE, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["model"].startswith("ft:tiny-chat:node:") and summary["events"] > 0 and summary["checkpoints"] > 0


def test_requests_are_counted_by_route_and_status(gateway, files):
    chat, _ = files
    alice = OpenAI(base_url=gateway.openai_url, api_key="key-alice")
    job = alice.fine_tuning.jobs.list(limit=1).data[0]
    alice.fine_tuning.jobs.retrieve(job.id)
    with pytest.raises(openai.NotFoundError):
        OpenAI(base_url=gateway.openai_url, api_key="key-bob").fine_tuning.jobs.retrieve(job.id)
    text = urllib.request.urlopen(f"http://127.0.0.1:{gateway.metrics_port}/metrics", timeout=30).read().decode()
    counts = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("ftlab_openai_requests_total{")}
    found = 'ftlab_openai_requests_total{method="GET",route="/v1/fine_tuning/jobs/{job_id}",status="%s"}'
    assert counts.get(found % "200", 0) >= 1 and counts.get(found % "404", 0) >= 1, counts
    assert not any(job.id in key for key in counts)  # ids never become labels
    assert 'ftlab_openai_request_seconds_count{method="POST",route="/v1/files"}' in text
