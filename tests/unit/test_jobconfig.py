"""Config resolution (defaults <- template <- overrides) and validation, field by field."""

import pytest

from ftlab.config import config_from_dict
from ftlab.v1 import config_pb2
from services.common.errors import InvalidArgument
from services.scheduler import jobconfig, templates

REQUIRED = {"base_model": "some/model", "dataset": {"uri": "data.jsonl"}}


def test_eight_templates_each_resolve_to_a_valid_complete_config():
    names = [t.name for t in templates.list_templates()]
    assert names == ["basic", "advanced", "qa", "coding-assistant", "chatbot-personality", "domain-expert",
                     "multilingual", "efficient"]
    for name in names:
        config = jobconfig.resolve(name, config_from_dict(REQUIRED))
        for field in config.DESCRIPTOR.fields:
            if field.has_presence and field.type != field.TYPE_MESSAGE and field.name != "chat_template":
                assert config.HasField(field.name), f"{name}: {field.name} unset"
        assert config.method and config.adapter and config.precision and config.lr_scheduler


def test_overrides_win_over_template_and_lists_are_replaced():
    overrides = config_from_dict({**REQUIRED, "learning_rate": 1e-3, "lora": {"target_modules": ["q_proj", "v_proj"]}})
    config = jobconfig.resolve("advanced", overrides)
    assert config.learning_rate == pytest.approx(1e-3)
    assert list(config.lora.target_modules) == ["q_proj", "v_proj"]
    assert config.lora.rank == 64  # from the template
    assert config.num_epochs == 3


def test_explicit_zero_overrides_a_template_value():
    config = jobconfig.resolve("coding-assistant", config_from_dict({**REQUIRED, "gradient_checkpointing": False,
                                                                      "warmup_ratio": 0}))
    assert config.gradient_checkpointing is False
    assert config.warmup_ratio == 0


def test_invalid_values_name_every_bad_field():
    bad = config_from_dict({"learning_rate": 5, "per_device_train_batch_size": 0, "lora": {"rank": 0},
                            "eval_strategy": "steps"})
    with pytest.raises(InvalidArgument) as info:
        jobconfig.resolve("basic", bad)
    fields = {v.field for v in info.value.violations}
    assert fields == {"config.base_model", "config.dataset.uri", "config.learning_rate",
                      "config.per_device_train_batch_size", "config.lora.rank", "config.eval_strategy"}


def test_unknown_template_is_a_field_violation():
    with pytest.raises(InvalidArgument) as info:
        jobconfig.resolve("nope", config_from_dict(REQUIRED))
    assert info.value.violations[0].field == "template"


def test_dpo_needs_preference_data_and_sft_refuses_it():
    with pytest.raises(InvalidArgument) as info:
        jobconfig.resolve("basic", config_from_dict({**REQUIRED, "method": "dpo", "dataset": {"uri": "d", "format": "alpaca"}}))
    assert {v.field for v in info.value.violations} == {"config.dataset.format"}
    with pytest.raises(InvalidArgument):
        jobconfig.resolve("basic", config_from_dict({**REQUIRED, "dataset": {"uri": "d", "format": "preference"}}))
    ok = jobconfig.resolve("basic", config_from_dict({**REQUIRED, "method": "dpo"}))
    assert ok.method == config_pb2.METHOD_DPO
