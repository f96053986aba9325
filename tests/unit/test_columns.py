"""dataset.columns: a dataset's own column names read as the ones its format needs, validated, and
suggested where a dataset's columns make up a format under other names."""

from __future__ import annotations

import json

import pytest

from ftlab.config import config_from_dict
from services.common import columns
from services.common.datasets import DatasetError, scan
from services.common.errors import InvalidArgument
from services.scheduler import jobconfig


def _qa(path, rows=6):
    path.write_text("".join(json.dumps({"question": f"{a}+1?", "answer": str(a + 1)}) + "\n" for a in range(rows)))
    return path


def test_a_mapping_makes_other_columns_a_format(tmp_path):
    path = _qa(tmp_path / "qa.jsonl")
    with pytest.raises(DatasetError, match=r"from its columns \['answer', 'question'\]"):
        scan(path)
    found = scan(path, None, {"prompt": "question", "completion": "answer"})
    assert found.format == "prompt_completion" and len(found.rows) == 6 and not found.bad


@pytest.mark.parametrize("present, expected", [
    (["question", "answer"], {"prompt": "question", "completion": "answer"}),
    (["Query", "Response"], {"prompt": "Query", "completion": "Response"}),
    (["prompt", "preferred", "dispreferred"], {"chosen": "preferred", "rejected": "dispreferred"}),
    (["instruction", "target"], {"output": "target"}),
    (["messages"], None),  # already a format: nothing to rename
    (["foo", "bar"], None),  # nothing known: no guess
])
def test_the_suggested_mapping(present, expected):
    assert columns.guess(present) == expected


def test_bad_mappings_are_refused_naming_the_field():
    base = {"base_model": "m", "dataset": {"uri": "d.jsonl"}}
    for bad, words in (({"promt": "question"}, "'promt' is not a column a format reads"),
                       ({"prompt": "q", "completion": "q"}, "each of the dataset's columns may be mapped once"),
                       ({"prompt": " "}, "must name one of the dataset's columns")):
        with pytest.raises(InvalidArgument) as err:
            jobconfig.resolve("basic", config_from_dict({**base, "dataset": {"uri": "d.jsonl", "columns": bad}}))
        assert [(v.field, words in v.description) for v in err.value.violations] == [("config.dataset.columns", True)]


def test_a_retry_replaces_the_mapping_whole():
    parent = config_from_dict({"dataset": {"uri": "d", "columns": {"prompt": "q", "completion": "a"}}})
    changed = jobconfig.overlay(parent, config_from_dict({"dataset": {"columns": {"messages": "chat"}}}))
    assert dict(changed.dataset.columns) == {"messages": "chat"} and changed.dataset.uri == "d"
