"""The gateway's pure parts: an OpenAI fine-tuning request as a job, a fine-tuned model's name, the
results CSV, and errors from the services behind named as the caller's parameters."""

from __future__ import annotations

import pytest

from ftlab.v1 import config_pb2, events_pb2, job_pb2
from services.openai_gateway import shapes
from services.openai_gateway.requests import job_request
from services.openai_gateway.shapes import Invalid

FILE = "file-" + "a" * 64


def test_a_request_maps_onto_the_template():
    request = job_request({"model": "small", "training_file": FILE, "validation_file": FILE, "suffix": "s-1",
                           "seed": 3, "metadata": {"team": "x"},
                           "method": {"type": "dpo", "dpo": {"hyperparameters": {
                               "n_epochs": 2, "batch_size": 8, "learning_rate_multiplier": 0.5, "beta": 0.3}}}},
                          {"small": "Qwen/Qwen2.5-0.5B"}, template_lr=2e-4)
    c = request.config
    assert (c.base_model, c.dataset.uri, c.dataset.eval_uri) == ("Qwen/Qwen2.5-0.5B", "datasets/" + "a" * 64,
                                                                 "datasets/" + "a" * 64)
    assert c.eval_strategy == config_pb2.EVAL_STRATEGY_STEPS and c.method == config_pb2.METHOD_DPO
    assert (c.num_epochs, c.per_device_train_batch_size, c.gradient_accumulation_steps) == (2, 8, 1)
    assert c.learning_rate == pytest.approx(1e-4) and c.dpo_beta == pytest.approx(0.3) and c.seed == 3
    assert request.template == "basic" and request.display_name == "s-1"
    assert request.metadata["team"] == "x" and request.metadata[shapes.MODEL_KEY] == "small"


def test_auto_leaves_the_templates_values():
    c = job_request({"model": "m", "training_file": FILE, "hyperparameters": {
        "n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}}, {}, 2e-4).config
    assert not c.HasField("num_epochs") and not c.HasField("per_device_train_batch_size")
    assert not c.HasField("learning_rate") and c.method == config_pb2.METHOD_UNSPECIFIED


@pytest.mark.parametrize(("body", "param"), [
    ({"training_file": FILE}, "model"),
    ({"model": "m"}, "training_file"),
    ({"model": "m", "training_file": "file-x"}, "training_file"),
    ({"model": "m", "training_file": FILE, "hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs"),
    ({"model": "m", "training_file": FILE, "hyperparameters": {"batch_size": 2.5}}, "hyperparameters.batch_size"),
    ({"model": "m", "training_file": FILE, "hyperparameters": {"warmup": 1}}, "hyperparameters.warmup"),
    ({"model": "m", "training_file": FILE, "method": {"type": "reinforcement"}}, "method.type"),
    ({"model": "m", "training_file": FILE, "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": -1}}}},
     "method.dpo.hyperparameters.beta"),
    ({"model": "m", "training_file": FILE, "suffix": "has space"}, "suffix"),
    ({"model": "m", "training_file": FILE, "metadata": {str(i): "v" for i in range(17)}}, "metadata"),
    ({"model": "m", "training_file": FILE, "metadata": {"openai.model": "v"}}, "metadata"),
    ({"model": "m", "training_file": FILE, "integrations": [{"type": "comet"}]}, "integrations"),
    ({"model": "m", "training_file": FILE, "temperature": 1}, "temperature"),
])
def test_bad_requests_name_the_parameter(body, param):
    with pytest.raises(Invalid) as err:
        job_request(body, {}, 2e-4)
    assert err.value.param == param and err.value.status in (400, 404), err.value.message


def test_a_fine_tuned_models_name_round_trips():
    job = job_pb2.Job(id="0123456789abcdef", config=config_pb2.TrainingConfig(base_model="org/base"),
                      metadata={shapes.MODEL_KEY: "base", shapes.SUFFIX_KEY: "s"})
    assert shapes.fine_tuned_model(job) == "ft:base:s:0123456789abcdef"
    assert shapes.parse_model(shapes.fine_tuned_model(job)) == ("0123456789abcdef", "")
    assert shapes.parse_model(shapes.fine_tuned_model(job, 40)) == ("0123456789abcdef", "checkpoint-40")
    for wrong in ("gpt-4o", "ft:base:s:nothex", "ft:base:s:0123456789abcdef:ckpt-step-x"):
        with pytest.raises(Invalid) as err:
            shapes.parse_model(wrong)
        assert err.value.status == 404 and err.value.param == "model"


def test_the_results_file_has_a_row_per_step():
    history = [job_pb2.JobEvent(sequence=1, metrics=events_pb2.TrainingMetrics(step=1, loss=2.0)),
               job_pb2.JobEvent(sequence=2, metrics=events_pb2.TrainingMetrics(step=2, loss=1.5, mean_token_accuracy=0.25)),
               job_pb2.JobEvent(sequence=3, eval=events_pb2.EvalMetrics(step=2, eval_loss=1.75))]
    assert shapes.metrics_csv(history).splitlines() == [
        "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy",
        "1,2.000000,,,", "2,1.500000,0.250000,1.750000,"]
