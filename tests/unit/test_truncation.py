"""The trainer's own truncation (padding-free batches, where TRL leaves it to us): an example whose
completion is cut away entirely is dropped as TRL drops it, and none left is an error, not a run
that trains on nothing (it once trained at loss 0 and SUCCEEDED)."""

from __future__ import annotations

import pytest
from datasets import Dataset

from services.trainer.recipe import truncate

MASKED = -100


def rows(prompt_lengths: list[int]) -> Dataset:
    """Tokenized prompt/completion examples: a prompt of n masked tokens, then a 2-token completion."""
    return Dataset.from_list([{"input_ids": list(range(n + 2)), "labels": [MASKED] * n + [7, 8]}
                              for n in prompt_lengths])


def test_examples_whose_completion_is_cut_away_are_dropped(capsys):
    kept = truncate(rows([3, 20, 4]), 8)
    assert kept is not None and kept["labels"] == [[MASKED] * 3 + [7, 8], [MASKED] * 4 + [7, 8]]
    assert "cut away the completion of 1 of 3 train examples" in capsys.readouterr().out


def test_a_completion_cut_short_is_kept():
    kept = truncate(rows([6]), 7)
    assert kept is not None and kept["labels"] == [[MASKED] * 6 + [7]]


def test_none_left_is_an_error_naming_the_setting():
    with pytest.raises(ValueError, match="max_seq_length 16 cuts away the completion of every eval example") as err:
        truncate(rows([40, 50]), 16, "eval")
    assert "max_seq_length 52 keeps every example whole" in str(err.value)


def test_short_enough_data_is_untouched():
    data = rows([1, 2])
    assert truncate(data, 64) is data and truncate(None, 8) is None
