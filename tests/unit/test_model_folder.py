"""A model folder whose config.json cannot build the model its weights were saved from: said by the
trainer before transformers builds mismatched layers (and says only that the weights do not fit)."""

from __future__ import annotations

import json
import shutil

import pytest

from services.common.model_folder import heads_misfit
from services.trainer.loading import model_config_type


@pytest.fixture
def edited(tiny_model, tmp_path):
    def edit(**values):
        path = tmp_path / "model"
        shutil.copytree(tiny_model, path, dirs_exist_ok=True)
        config = json.loads((tiny_model / "config.json").read_text())
        config.update(values)
        (path / "config.json").write_text(json.dumps(config))
        return path
    return edit


def test_head_counts_that_do_not_fit_are_said_and_the_trainer_stops_there(edited, tiny_model):
    assert heads_misfit(str(tiny_model)) is None
    five = edited(num_attention_heads=5)
    assert heads_misfit(str(five)) == "hidden_size 64 is not a multiple of num_attention_heads 5 (and no head_dim is set)"
    with pytest.raises(ValueError, match=r"^the model's config\.json: hidden_size 64 is not a multiple"):
        model_config_type(str(five), remote_code=False)
    assert heads_misfit(str(edited(num_attention_heads=5, head_dim=16))) == \
        "num_attention_heads 5 is not a multiple of num_key_value_heads 2"
    assert heads_misfit(str(edited(num_attention_heads=8, num_key_value_heads=4))) is None
    assert model_config_type(str(edited(num_attention_heads=8, num_key_value_heads=4)), remote_code=False) == "qwen2"


def test_what_is_not_a_readable_config_is_left_to_the_other_checks(tmp_path):
    assert heads_misfit(str(tmp_path / "nowhere")) is None
    (tmp_path / "config.json").write_text("[1, 2]")
    assert heads_misfit(str(tmp_path)) is None
    (tmp_path / "config.json").write_text('{"hidden_size": 64, "num_attention_heads": true}')
    assert heads_misfit(str(tmp_path)) is None
