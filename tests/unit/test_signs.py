"""The rules' newer signs, each on the words the libraries print (services/analyzer/signs.py, rules.py
and phases.py): what each must match and what it must leave to other rules."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from services.analyzer import logparse, phases, rules, signs
from services.analyzer.cases import request_for

DEV = Path(__file__).parents[2] / "tests" / "fixtures" / "corpus" / "dev"


def category_of_raised(exc: BaseException) -> str:
    """The category of a real traceback of `exc`, raised here."""
    try:
        raise exc
    except BaseException:  # noqa: BLE001 - the traceback is what is wanted
        log = logparse.parse(traceback.format_exc())
    return rules.classify(rules.Facts(log, 1, None, ""))[0]


def test_a_file_read_as_the_models_config_is_a_file_given_as_the_model_not_a_config_json():
    assert signs.file_given_as_model(["It looks like the config file at '/models/tiny.tar.gz' is not a valid "
                                      "JSON file."])
    assert signs.file_given_as_model(["It looks like the config file at '<model>' is not a valid JSON file."])
    assert not signs.file_given_as_model(["It looks like the config file at '/models/tiny/config.json' is not a "
                                          "valid JSON file."])
    assert not signs.file_given_as_model(["Expecting value: line 1 column 1 (char 0)"])


def test_an_evaluation_setting_is_read_on_the_librarys_line_and_the_evaluation_data_is_not_one():
    assert signs.EVAL_SETTING.search("if self.eval_strategy == IntervalStrategy.STEPS and self.eval_steps > 1:")
    assert signs.EVAL_SETTING.search("if args.metric_for_best_model is None:")
    assert not signs.EVAL_SETTING.search("if self.eval_dataset is None:")
    assert not signs.EVAL_SETTING.search("if self.eval_steps_done > 1:")


@pytest.mark.parametrize("message, category", [
    ("Using `fp8` precision requires `transformer_engine` or `MS-AMP` to be installed.", "PRECISION_UNSUPPORTED"),
    ("float8_e4m3fn is not supported for this operation", "PRECISION_UNSUPPORTED"),
    ("Loading a GPTQ quantized model requires optimum (`pip install optimum`)", "QUANTIZATION_UNSUPPORTED"),
    # a file named after a precision, and a word that only begins like "requires": a setting refused
    ("model.fp16.safetensors: tensor requires_grad must be set to a bool", "INVALID_CONFIG"),
])
def test_precisions_and_quantizers_are_read_from_their_own_words(message, category):
    assert category_of_raised(ValueError(message)) == category


def test_a_failure_while_the_trainer_builds_its_accelerator_is_in_startup_and_data_preparation_stays():
    built = logparse.parse(request_for(DEV / "cpu-accelerate_env_fp8").log)
    assert phases.refine("DATA_PREP", built) == "STARTUP"
    assert phases.refine("TRAINING", built) == "TRAINING"  # only the trainer's data-preparation word is coarse
    # a template failing while the rows are prepared: data preparation, as the trainer said
    template = logparse.parse(request_for(DEV / "cpu-template_reading_absent_key").log)
    assert phases.refine("DATA_PREP", template) == "DATA_PREP"


def test_rows_of_an_embedding_looked_up_past_its_end_are_token_ids_out_of_range():
    assert signs.TOKEN_ROWS.search("originals = self.weight[self.token_indices[adapter_name]]")
    assert signs.TOKEN_ROWS.search("vectors = embed_tokens[token_ids]")
    assert not signs.TOKEN_ROWS.search("batch = rows[index]")
    assert not signs.TOKEN_ROWS.search("value = self.weight[0]")
