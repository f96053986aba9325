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



def test_a_mapping_naming_columns_no_row_has_is_refused_and_the_fix_is_to_drop_it(tmp_path):
    """The rows hold messages; a mapping from question/answer would otherwise be ignored silently and
    the job would train on something other than what its file says."""
    from services.analyzer import suggestions

    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "hello"}]}) + "\n")
    mapping = {"prompt": "question", "completion": "answer"}
    with pytest.raises(DatasetError, match=r"^dataset\.columns maps 'completion' to 'answer', 'prompt' to "
                                           r"'question', but no row has those columns \(its columns: messages\)"):
        scan(path, None, mapping)
    with pytest.raises(DatasetError, match=r"maps 'prompt' to 'question_typo', but no row has that column "
                                           r"\(its columns: answer, question\)"):
        scan(_qa(tmp_path / "qa.jsonl"), None, {"prompt": "question_typo", "completion": "answer"})
    config = config_from_dict({"base_model": "m", "dataset": {"uri": "d.jsonl", "columns": mapping}})
    (fix,) = suggestions.suggest("DATASET_SCHEMA", "DATA_PREP", config, False,
                                 facts={"cause": "columns_absent", "columns": ["messages"]})
    assert (fix.field, json.loads(fix.current), fix.suggested) == ("dataset.columns", mapping, "{}")
    (fix,) = suggestions.suggest("DATASET_SCHEMA", "DATA_PREP", config, False,
                                 facts={"cause": "columns_absent", "columns": ["q", "answer"]})
    assert (fix.field, fix.suggested) == ("dataset.columns", '{"prompt":"q","completion":"answer"}')
