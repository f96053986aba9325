"""The trainer's check of a checkpoint folder before it resumes, on real folders."""

from __future__ import annotations

import pytest

from services.common.checkpoints import CheckpointError, check_resumable


def test_a_folder_with_weights_passes(tmp_path):
    ckpt = tmp_path / "checkpoint-2"
    ckpt.mkdir()
    (ckpt / "adapter_model.safetensors").write_bytes(b"x")
    (ckpt / "trainer_state.json").write_text("{}")
    check_resumable(ckpt)


def test_an_empty_folder_is_left_to_the_library(tmp_path):
    (tmp_path / "checkpoint-2").mkdir()
    check_resumable(tmp_path / "checkpoint-2")


@pytest.mark.parametrize("make, words", [
    (lambda p: None, "was not found: it does not exist"),
    (lambda p: p.write_text("x"), "was not found: a file stands where its folder should be"),
    (lambda p: (p.mkdir(), (p / "trainer_state.json").write_text("{}")), "is damaged: it holds trainer_state.json"),
])
def test_what_is_wrong_is_named(tmp_path, make, words):
    ckpt = tmp_path / "checkpoint-2"
    make(ckpt)
    with pytest.raises(CheckpointError, match=words):
        check_resumable(ckpt)
