"""Pre-flight through the real services: CreateJob asks the analyzer, refuses what cannot run with
FAILED_PRECONDITION naming each failed check (nothing is queued), and keeps the findings on the job."""

from __future__ import annotations

import json

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ftlab import Client
from ftlab.errors import FtlabError
from ftlab.v1 import analyzer_pb2, job_pb2, job_service_pb2

PASS, WARN, FAIL = analyzer_pb2.CHECK_STATUS_PASS, analyzer_pb2.CHECK_STATUS_WARN, analyzer_pb2.CHECK_STATUS_FAIL


def checks(job) -> dict[str, int]:
    return {c.name: c.status for c in job.preflight.checks}


def test_a_good_job_keeps_its_dataset_report(server, job_config):
    with Client(server.address, user="pf-good") as client:
        job = client.create_job(job_config)
        report = client.get_job(job.name).preflight
    assert report.ok and checks(job)["dataset"] == PASS
    d = report.dataset
    assert (d.format, d.rows, d.bad_row_count) == ("messages", 128, 0)
    assert 0 < d.p50_tokens <= d.p95_tokens <= d.max_tokens <= 128 and d.share_truncated == 0
    assert sum(b.rows for b in d.token_lengths) == d.rows_measured == 128
    # the tiny model's shape was read, so there is an estimate and its breakdown adds up
    m = report.memory
    assert report.estimated_gpu_memory_bytes == m.total_bytes > 0
    assert m.weights_bytes + m.gradients_bytes + m.optimizer_bytes + m.activations_bytes + m.other_bytes == m.total_bytes
    assert 0 < m.trainable_parameters < m.parameters


def test_bad_rows_are_refused_with_their_line_numbers(server, server_home, job_config):
    lines = [json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]})
             for i in range(20)]
    lines[6] = lines[6][:-5]  # cut short
    lines[13] = json.dumps({"messages": [{"role": "robot", "content": "x"}]})  # no such role
    (server_home / "datasets" / "two-bad.jsonl").write_text("\n".join(lines) + "\n")
    config = {**job_config, "dataset": {"uri": "two-bad.jsonl"}, "eval_strategy": "no"}
    with Client(server.address, user="pf-bad") as client:
        before = len(list(client.list_jobs()))
        with pytest.raises(FtlabError) as err:
            client.create_job(config)
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "lines 7, 14" in str(err.value)
        assert len(list(client.list_jobs())) == before  # nothing was queued
        dry = client.create_job(config, validate_only=True)
        assert dry.id == "" and not dry.preflight.ok
        assert [(b.line, "JSON" in b.reason or "role" in b.reason) for b in dry.preflight.dataset.bad_rows] == [
            (7, True), (14, True)]
        forced = client.create_job(config, force=True)  # the user knows better: queued, findings kept
        assert forced.state == job_pb2.JOB_STATE_QUEUED and checks(forced)["dataset"] == FAIL
        client.cancel_job(forced.name)


def test_the_refusal_names_each_failed_check_in_its_details(server, job_config):
    """A raw gRPC client reads google.rpc.PreconditionFailure and ErrorInfo from the status."""
    from ftlab.config import config_from_dict
    from ftlab.v1 import job_service_pb2_grpc

    config = config_from_dict({**job_config, "method": "dpo", "eval_strategy": "no"})  # chat rows, DPO needs pairs
    with grpc.insecure_channel(server.address) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.CreateJob(job_service_pb2.CreateJobRequest(config=config), metadata=[("x-ftlab-user", "pf-raw")])
    status = rpc_status.from_call(err.value)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = {}
    for d in status.details:
        for kind in (error_details_pb2.PreconditionFailure, error_details_pb2.ErrorInfo):
            if d.Is(kind.DESCRIPTOR):
                msg = kind()
                d.Unpack(msg)
                details[kind.__name__] = msg
    assert details["ErrorInfo"].reason == "PREFLIGHT_FAILED"
    violation = details["PreconditionFailure"].violations[0]
    assert (violation.type, violation.subject) == ("PREFLIGHT", "dataset")
    assert "does not fit method METHOD_DPO" in violation.description


def test_rows_longer_than_max_seq_length_are_a_warning_with_a_fix(server, server_home, job_config):
    long = " ".join(["fine tuning adapts a model"] * 60)
    rows = [{"messages": [{"role": "user", "content": long if i % 4 == 0 else "hi"},
                          {"role": "assistant", "content": "ok"}]} for i in range(40)]
    (server_home / "datasets" / "some-long.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with Client(server.address, user="pf-long") as client:
        job = client.create_job({**job_config, "dataset": {"uri": "some-long.jsonl"}, "eval_strategy": "no",
                                 "max_seq_length": 64}, validate_only=True)
    check = next(c for c in job.preflight.checks if c.name == "sequence_length")
    assert check.status == WARN and job.preflight.ok  # a warning does not refuse the job
    assert job.preflight.dataset.share_truncated == pytest.approx(0.25)
    fix = check.suggestions[0]
    assert fix.field == "max_seq_length" and fix.current == "64" and int(fix.suggested) > 64


@pytest.mark.parametrize("targets, wrong", [
    (["q_projj"], "'q_projj' is no module of this model (did you mean 'q_proj'?)"),
    (["q_proj", "v_prj"], "'v_prj' is no module"),  # this once trained q_proj alone, silently
    (["input_layernorm"], "'input_layernorm' is a Qwen2RMSNorm, which LoRA cannot wrap"),
])
def test_lora_target_modules_that_the_model_lacks_are_refused_before_training(server, job_config, targets, wrong):
    with Client(server.address, user="pf-lora") as client:
        with pytest.raises(FtlabError) as err:
            client.create_job({**job_config, "adapter": "lora", "lora": {"target_modules": targets}})
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert wrong in err.value.message
        report = client.create_job({**job_config, "adapter": "lora", "lora": {"target_modules": ["q_proj", "v_proj"]}},
                                   validate_only=True)
    assert checks(report)["lora_target_modules"] == PASS


def test_the_lora_check_suggests_the_modules_meant(tiny_model):
    from ftlab.config import config_from_dict
    from services.analyzer import modules

    check = modules.lora_check(config_from_dict({"base_model": str(tiny_model), "adapter": "lora",
                                                 "lora": {"target_modules": ["q_proj", "v_prj"]}}))
    assert check.status == FAIL
    assert [(p.field, p.suggested) for p in check.suggestions] == [("lora.target_modules", '["q_proj", "v_proj"]')]


def test_a_column_mapping_that_names_absent_columns_is_refused_with_the_mapping_dropped(server, job_config):
    """The job's rows hold messages; dataset.columns maps question/answer, which no row has. Before,
    the mapping was ignored and the job trained on the messages as if nothing were wrong."""
    config = {**job_config, "dataset": {**job_config["dataset"],
                                        "columns": {"prompt": "question", "completion": "answer"}}}
    with Client(server.address, user="pf-columns") as client:
        with pytest.raises(FtlabError) as err:
            client.create_job(config)
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "dataset.columns maps 'completion' to 'answer', 'prompt' to 'question'" in str(err.value)
        dry = client.create_job(config, validate_only=True)
    (check,) = [c for c in dry.preflight.checks if c.name == "dataset"]
    assert check.status == FAIL
    assert [(s.field, s.suggested) for s in check.suggestions] == [("dataset.columns", "{}")]


def test_an_eval_split_that_leaves_nothing_to_train_on_is_refused_with_a_split_that_does(server, job_config):
    """128 rows and eval_split 0.995: the trainer's split holds out ceil(127.4) = 128 rows and datasets
    refuses it once the run has started; pre-flight counts it first. 0.99 leaves one row and passes."""
    config = {**job_config, "dataset": {**job_config["dataset"], "eval_split": 0.995}}
    with Client(server.address, user="pf-split") as client:
        with pytest.raises(FtlabError) as err:
            client.create_job(config)
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION and "eval_split" in str(err.value)
        dry = client.create_job(config, validate_only=True)
        (check,) = [c for c in dry.preflight.checks if c.name == "eval_split"]
        assert check.status == FAIL and "holds out 128 of 128 rows" in check.message
        assert [(s.field, s.suggested) for s in check.suggestions] == [("dataset.eval_split", "0.1")]
        fine = client.create_job({**config, "dataset": {**config["dataset"], "eval_split": 0.99}}, validate_only=True)
    assert "eval_split" not in checks(fine)


def test_a_chat_template_that_renders_nothing_is_refused_with_the_built_in_one_suggested(server, job_config):
    config = {**job_config, "chat_template": "{% for m in messages %}{% endfor %}"}
    with Client(server.address, user="pf-empty-template") as client:
        dry = client.create_job(config, validate_only=True)
    (check,) = [c for c in dry.preflight.checks if c.name == "chat_template"]
    assert check.status == FAIL and "renders every conversation as empty text" in check.message
    assert [(s.field, s.suggested) for s in check.suggestions] == [("chat_template", "chatml")]


def test_a_template_name_the_server_does_not_know_is_refused_not_trained_on_as_text(server, job_config):
    """"llama3" is no name this server knows, so it is Jinja text that renders every row as the word
    itself: the run would train on that word alone and succeed."""
    with Client(server.address, user="pf-template-name") as client:
        dry = client.create_job({**job_config, "chat_template": "llama3"}, validate_only=True)
        named = client.create_job({**job_config, "chat_template": "chatml"}, validate_only=True)
    (check,) = [c for c in dry.preflight.checks if c.name == "chat_template"]
    assert check.status == FAIL and "renders every conversation as the same text ('llama3')" in check.message
    assert "'llama3' is not a template name this server knows (chatml)" in check.message
    assert [(s.field, s.suggested) for s in check.suggestions] == [("chat_template", "chatml")]
    assert "chat_template" not in checks(named)


def test_a_model_folder_without_config_json_is_refused_and_named(server, job_config, tiny_model, tmp_path):
    import shutil

    folder = tmp_path / "no-config"
    shutil.copytree(tiny_model, folder)
    (folder / "config.json").unlink()
    (folder / "config.json").symlink_to(tmp_path / "deleted.json")  # a link to a file that is gone
    with Client(server.address, user="pf-no-config") as client:
        dry = client.create_job({**job_config, "base_model": str(folder)}, validate_only=True)
        fine = client.create_job(job_config, validate_only=True)
    [check] = [c for c in dry.preflight.checks if c.name == "model"]
    assert check.status == FAIL
    assert "no config.json" in check.message and "link to a file that does not exist" in check.message
    assert [s.field for s in check.suggestions] == ["base_model"]
    assert all(c.status == PASS for c in fine.preflight.checks if c.name == "model")
    # a config.json whose head counts cannot build the layers its weights were saved from
    five = tmp_path / "heads-five"
    shutil.copytree(tiny_model, five)
    (five / "config.json").write_text(json.dumps({**json.loads((tiny_model / "config.json").read_text()),
                                                  "num_attention_heads": 5, "num_key_value_heads": 5}))
    with Client(server.address, user="pf-no-config") as client:
        dry = client.create_job({**job_config, "base_model": str(five)}, validate_only=True)
    [check] = [c for c in dry.preflight.checks if c.name == "model"]
    assert check.status == FAIL and "makes 60 query rows, but the weights' query projection has 64" in check.message
    assert [s.field for s in check.suggestions] == ["base_model"]
    # the model packed as an archive, and a file of the model given in place of its folder
    import tarfile

    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tiny_model, arcname="tiny")
    with Client(server.address, user="pf-no-config") as client:
        packed = client.create_job({**job_config, "base_model": str(archive)}, validate_only=True)
        weights = client.create_job({**job_config, "base_model": str(tiny_model / "model.safetensors")},
                                    validate_only=True)
    [check] = [c for c in packed.preflight.checks if c.name == "model"]
    assert check.status == FAIL and "is a file, not a model folder: it is an archive; unpack it" in check.message
    assert [s.field for s in check.suggestions] == ["base_model"]
    [check] = [c for c in weights.preflight.checks if c.name == "model"]
    assert check.status == FAIL and f"give the folder that holds config.json and the weights (this file is in " \
        f"{tiny_model}" in check.message


def test_weight_decay_that_blows_the_weights_up_is_refused_with_a_gentle_one(server, job_config):
    config = {**job_config, "learning_rate": 0.1, "weight_decay": 100}
    with Client(server.address, user="pf-decay") as client:
        with pytest.raises(FtlabError) as err:
            client.create_job(config)
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION and "weight_decay" in str(err.value)
        dry = client.create_job(config, validate_only=True)
        fine = client.create_job({**config, "weight_decay": 0.01}, validate_only=True)
    (check,) = [c for c in dry.preflight.checks if c.name == "weight_decay"]
    assert check.status == FAIL and "multiplies every weight by -9" in check.message
    assert [(s.field, s.suggested) for s in check.suggestions] == [("weight_decay", "0.01")]
    assert "weight_decay" not in checks(fine)
