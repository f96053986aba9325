"""The sample prompts a job names: inline, from a JSONL file of chats or prompts, or from plain text."""

from __future__ import annotations

import json

import pytest

from services.common.prompts import MAX_PROMPTS, load_prompts


def test_prompts_inline_and_from_files(tmp_path):
    jsonl = tmp_path / "prompts.jsonl"
    jsonl.write_text(json.dumps({"messages": [{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": "Hi?"}]}) + "\n\n"
                     + json.dumps({"prompt": "What is 1 plus 1?"}) + "\n")
    chats = load_prompts({"prompts": ["First?"], "prompts_uri": str(jsonl)})
    assert chats == [[{"role": "user", "content": "First?"}],
                     [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
                     [{"role": "user", "content": "What is 1 plus 1?"}]]
    text = tmp_path / "prompts.txt"
    text.write_text("one\n\n two \n" + "more\n" * 40)
    chats = load_prompts({"prompts_uri": "prompts.txt"}, datasets_folder=str(tmp_path))
    assert chats[:2] == [[{"role": "user", "content": "one"}], [{"role": "user", "content": "two"}]]
    assert len(chats) == MAX_PROMPTS
    assert load_prompts({}) == []


def test_a_prompt_row_that_is_neither_a_chat_nor_a_prompt_is_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "?"}) + "\n")
    with pytest.raises(ValueError, match=r"samples.prompts_uri: line 1 of bad.jsonl has neither `messages` nor `prompt`"):
        load_prompts({"prompts_uri": str(bad)})
