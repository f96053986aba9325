"""A model folder whose config.json cannot build the model its weights were saved from: said by the
trainer before transformers builds mismatched layers (and says only that the weights do not fit)."""

from __future__ import annotations

import json
import shutil
import struct

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


def test_head_counts_the_weights_do_not_fit_are_said_and_the_trainer_stops_there(edited, tiny_model):
    assert heads_misfit(str(tiny_model)) is None  # 4 heads of 16 over hidden 64: 64 query rows, as saved
    five = edited(num_attention_heads=5, num_key_value_heads=5)
    assert heads_misfit(str(five)) == ("num_attention_heads 5 x hidden_size 64 / 5 = 12 per head makes 60 query rows, "
                                       "but the weights' query projection has 64")
    with pytest.raises(ValueError, match=r"^the model's config\.json: num_attention_heads 5 x .* has 64: its attention"):
        model_config_type(str(five), remote_code=False)
    assert "head_dim 16 makes 80 query rows" in heads_misfit(str(edited(num_attention_heads=5, num_key_value_heads=5,
                                                                        head_dim=16)))
    assert heads_misfit(str(edited(num_attention_heads=5))) == \
        "num_attention_heads 5 is not a multiple of num_key_value_heads 2"
    assert heads_misfit(str(edited(num_attention_heads=8, num_key_value_heads=4))) is None  # 8 x 8 = 64 rows
    assert model_config_type(str(edited(num_attention_heads=8, num_key_value_heads=4)), remote_code=False) == "qwen2"


def test_a_config_its_weights_were_saved_with_is_taken_even_where_heads_do_not_divide(tmp_path):
    # hidden 64 over 5 heads: Qwen2 and Llama build 5 x 12 = 60 query rows, and the weights hold 60
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 64, "num_attention_heads": 5,
                                                      "num_key_value_heads": 5}))
    header = json.dumps({"model.layers.0.self_attn.q_proj.weight": {"dtype": "F32", "shape": [60, 64],
                                                                   "data_offsets": [0, 0]}}).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    assert heads_misfit(str(tmp_path)) is None


def test_what_cannot_be_read_is_left_to_the_other_checks(tmp_path):
    assert heads_misfit(str(tmp_path / "nowhere")) is None
    (tmp_path / "config.json").write_text("[1, 2]")
    assert heads_misfit(str(tmp_path)) is None
    (tmp_path / "config.json").write_text('{"hidden_size": 64, "num_attention_heads": true}')
    assert heads_misfit(str(tmp_path)) is None
    (tmp_path / "config.json").write_text("[" * 100_000 + "]" * 100_000)  # deeper than json can recurse
    assert heads_misfit(str(tmp_path)) is None
    (tmp_path / "config.json").write_text('{"hidden_size": 64, "num_attention_heads": 5}')  # no weights here
    assert heads_misfit(str(tmp_path)) is None
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 64)  # a header that is not one
    assert heads_misfit(str(tmp_path)) is None


def test_a_file_given_as_the_model_is_said_to_be_one_and_the_analyzer_names_the_model(tiny_model, tmp_path):
    """transformers reads a file given as the model as its config and says that it is not JSON, which reads
    as a damaged config; the trainer says first that a model is a folder (an archive: unpack it)."""
    import tarfile
    import traceback

    from ftlab.v1 import analyzer_pb2
    from services.analyzer.analyze import analyze
    from services.analyzer.cases import names
    from services.common.model_folder import not_a_folder

    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tiny_model, arcname="tiny")
    assert not_a_folder(str(tiny_model)) is None and not_a_folder(str(tmp_path / "nowhere")) is None
    assert not_a_folder(str(tiny_model / "config.json")) == (
        f": give the folder that holds config.json and the weights (this file is in {tiny_model})")
    with pytest.raises(OSError, match=r"tiny\.tar\.gz is a file, not a model folder: it is an archive; unpack it"):
        try:
            model_config_type(str(archive), remote_code=False)
        except OSError:
            log = traceback.format_exc()
            raise
    from ftlab.v1 import events_pb2

    # as the scheduler asks: the run's log and the phase the trainer announced
    analysis = analyze(analyzer_pb2.AnalyzeFailureRequest(log=log, exit_code=1, phase=events_pb2.PHASE_MODEL_LOAD))
    assert names(analysis) == ("MODEL_NOT_FOUND", "MODEL_LOAD")
