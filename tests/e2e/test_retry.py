"""Resume with changes through the real services: RetryJob makes a new job linked to its parent,
records every change with its reason, resumes its checkpoint fully or weights-only as the changes
require; auto-recovery does the same by itself within its per-category budget."""

from __future__ import annotations

import json

import pytest

from ftlab import Client
from ftlab.v1 import analyzer_pb2, events_pb2, job_pb2
from tests.helpers import wait_for

pytestmark = pytest.mark.slow


def first_step(client, job) -> int:
    return next(e.metrics.step for e in client.list_events(job.name) if e.HasField("metrics"))


def test_retry_of_a_cancelled_job_resumes_fully_or_weights_only(server, server_home, job_config):
    with Client(server.address, user="retry") as client:
        job = client.create_job({**job_config, "max_steps": 2000, "save_steps": 10, "eval_strategy": "no"})
        wait_for(lambda: len(client.list_checkpoints(job.name)) >= 2, timeout=180, what="two checkpoints")
        client.cancel_job(job.name)
        client.wait(job.name, timeout=60)
        latest = max(c.step for c in client.list_checkpoints(job.name))

        # only the batch layout changes: the whole training state resumes, at the step after the checkpoint
        same = client.retry_job(job.name, {"max_steps": latest + 4, "per_device_eval_batch_size": 2},
                                checkpoint="latest")
        assert same.parent == job.name and same.id != job.id and not same.automatic
        assert {(c.field, c.current, c.suggested) for c in same.changes} == {
            ("max_steps", "2000", str(latest + 4)), ("per_device_eval_batch_size", "4", "2")}
        assert all(c.reason == "changed by the user" for c in same.changes)
        assert client.wait(same.name, timeout=180).state == job_pb2.JOB_STATE_SUCCEEDED
        assert first_step(client, same) == latest + 1

        # a new learning rate would be undone by the saved optimizer and schedule: weights only, from step 1
        lower = client.retry_job(job.name, {"learning_rate": 1e-3, "max_steps": 6}, checkpoint="latest")
        reason = client.list_events(lower.name)[0].state_changed.reason
        assert f"resumes from checkpoint-{latest} (weights only" in reason
        assert client.wait(lower.name, timeout=180).state == job_pb2.JOB_STATE_SUCCEEDED
        assert first_step(client, lower) == 1
        log = (server_home / "artifacts" / "jobs" / lower.id / "runs" / f"{lower.id}-1" / "train.log").read_text()
        assert f"starting from the adapter weights of checkpoint-{latest}" in log

        # the parent keeps its own history; a job that has not ended cannot be retried
        assert client.get_job(job.name).state == job_pb2.JOB_STATE_CANCELLED
        running = client.create_job({**job_config, "max_steps": 2000, "save_steps": 0, "eval_strategy": "no"})
        with pytest.raises(Exception, match="FAILED_PRECONDITION: only an ended job .* is (queued|starting|running)"):
            client.retry_job(running.name)
        client.cancel_job(running.name)


def test_another_user_cannot_retry_my_job(server, job_config):
    with Client(server.address, user="retry-owner") as owner, Client(server.address, user="retry-other") as other:
        job = owner.create_job({**job_config, "max_steps": 2000, "save_steps": 0, "eval_strategy": "no"})
        owner.cancel_job(job.name)
        with pytest.raises(Exception, match="NOT_FOUND"):
            other.retry_job(job.name)


def test_auto_recovery_applies_the_suggestions_within_its_budget(server, server_home, job_config):
    import json

    rows = [{"prompt": f"Say {w}", "completion": w} for w in ["yes", "no", "maybe", "hello"] * 8]
    (server_home / "datasets" / "say.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    diverging = {**job_config, "adapter": "full", "learning_rate": 1.0, "max_grad_norm": 0, "weight_decay": 0,
                 "warmup_ratio": 0, "lr_scheduler": "constant", "max_steps": 60, "save_steps": 0,
                 "max_seq_length": 64, "eval_strategy": "no", "dataset": {"uri": "say.jsonl"}}
    with Client(server.address, user="auto") as client:
        with pytest.raises(Exception, match="INVALID_ARGUMENT"):  # no automatic fix is safe for this class
            client.create_job(diverging, retry_policy={"auto_recover": {"DATASET_NOT_FOUND": 1}})
        job = client.create_job(diverging, retry_policy={"auto_recover": {"NAN_OR_DIVERGENCE": 1}})
        assert client.wait(job.name, timeout=180).state == job_pb2.JOB_STATE_FAILED

        def child_of(parent):
            return next((j for j in client.list_jobs() if j.parent == parent.name), None)

        child = wait_for(lambda: child_of(job), timeout=60, what="the automatic retry")
        assert child.automatic
        changes = {c.field: (c.current, c.suggested, c.reason) for c in child.changes}
        assert changes["learning_rate"][:2] == ("1.0", "0.1")
        assert changes["learning_rate"][2].startswith("suggested by the analyzer")
        assert child.retry_policy.auto_recover["NAN_OR_DIVERGENCE"] == 0  # its budget is spent
        ended = client.wait(child.name, timeout=180)
        if ended.state == job_pb2.JOB_STATE_FAILED:  # diverged again: no budget, so no third job
            wait_for(lambda: client.get_job(child.name).analysis.category, timeout=30, what="the analysis")
            assert child_of(child) is None


def test_the_suggestions_of_a_template_failure_fix_the_job(server, job_config):
    """A job's chat template that does not compile, forced past pre-flight, fails in data preparation;
    the analysis (on the service's own paths, a virtual environment's) names the template and
    suggests the built-in one by name, and `retry --apply-suggestions` trains with it."""
    broken = {**job_config, "max_steps": 3, "save_steps": 0, "eval_strategy": "no",
              "chat_template": "{% for m in messages %}{{ m['content'] }}"}
    with Client(server.address, user="suggested") as client:
        refused = client.create_job(broken, validate_only=True).preflight
        assert not refused.ok
        assert [p.suggested for c in refused.checks for p in c.suggestions if p.field == "chat_template"] == ["chatml"]
        job = client.create_job(broken, force=True)
        assert client.wait(job.name, timeout=180).state == job_pb2.JOB_STATE_FAILED
        failed = wait_for(lambda: (j := client.get_job(job.name)).analysis.category and j, timeout=60,
                          what="the analysis")
        assert failed.analysis.category == analyzer_pb2.FAILURE_CATEGORY_CHAT_TEMPLATE_INCOMPATIBLE
        assert failed.analysis.phase == events_pb2.PHASE_DATA_PREP
        assert [(s.field, s.suggested) for s in failed.analysis.suggestions] == [("chat_template", "chatml")]
        retried = client.retry_job(job.name, apply_suggestions=True)
        assert [(c.field, c.suggested) for c in retried.changes] == [("chat_template", "chatml")]
        assert client.wait(retried.name, timeout=180).state == job_pb2.JOB_STATE_SUCCEEDED


def test_a_dataset_of_other_column_names_is_mapped_by_the_suggestions(server, job_config, tmp_path):
    """Rows of question/answer fit no format: pre-flight and the analysis of the real failure suggest
    dataset.columns, and `retry --apply-suggestions` trains with the mapping."""
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({"question": f"What is {a} plus 1?", "answer": f"{a + 1}."}) + "\n"
                          for a in range(32)))
    config = {**job_config, "dataset": {"uri": str(qa)}, "max_steps": 3, "save_steps": 0, "eval_strategy": "no"}
    mapping = '{"prompt":"question","completion":"answer"}'
    with Client(server.address, user="columns") as client:
        refused = client.create_job(config, validate_only=True).preflight
        assert not refused.ok
        assert [(p.field, p.suggested) for c in refused.checks for p in c.suggestions] == [("dataset.columns", mapping)]
        job = client.create_job(config, force=True)
        assert client.wait(job.name, timeout=180).state == job_pb2.JOB_STATE_FAILED
        failed = wait_for(lambda: (j := client.get_job(job.name)).analysis.category and j, timeout=60,
                          what="the analysis")
        assert failed.analysis.category == analyzer_pb2.FAILURE_CATEGORY_DATASET_SCHEMA
        assert [(s.field, s.suggested) for s in failed.analysis.suggestions] == [("dataset.columns", mapping)]
        retried = client.retry_job(job.name, apply_suggestions=True)
        assert dict(retried.config.dataset.columns) == {"prompt": "question", "completion": "answer"}
        assert retried.preflight.ok and retried.preflight.dataset.format == "prompt_completion"
        assert client.wait(retried.name, timeout=180).state == job_pb2.JOB_STATE_SUCCEEDED


def test_a_tracker_that_is_not_installed_is_taken_out_by_the_suggestions(server, job_config, tmp_path):
    """report_to names TensorBoard and W&B, which this machine lacks: the run fails first, the analysis
    suggests report_to without it, the retry trains, and its logs download carries TensorBoard's files."""
    import importlib.util
    import zipfile

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    config = {**job_config, "max_steps": 3, "save_steps": 0, "eval_strategy": "no",
              "report_to": ["tensorboard", "wandb"]}
    with Client(server.address, user="trackers") as client:
        job = client.create_job(config)
        assert client.wait(job.name, timeout=180).state == job_pb2.JOB_STATE_FAILED
        failed = wait_for(lambda: (j := client.get_job(job.name)).analysis.category and j, timeout=60,
                          what="the analysis")
        assert failed.analysis.category == analyzer_pb2.FAILURE_CATEGORY_DEPENDENCY_MISSING
        assert failed.analysis.phase == events_pb2.PHASE_STARTUP
        assert [(s.field, s.suggested) for s in failed.analysis.suggestions] == [("report_to", "[tensorboard]")]
        retried = client.retry_job(job.name, apply_suggestions=True)
        assert list(retried.config.report_to) == [1]  # TRACKER_TENSORBOARD
        assert client.wait(retried.name, timeout=180).state == job_pb2.JOB_STATE_SUCCEEDED
        client.download(retried.name, tmp_path / "logs.zip", what="logs")
    names = zipfile.ZipFile(tmp_path / "logs.zip").namelist()
    assert any("/tensorboard/events.out.tfevents." in n for n in names), names
