"""Dataset reading and normalization into TRL's shapes."""

import json

import pytest

from services.common.datasets import DatasetError, detect_format, load_rows, normalize


def test_messages_pass_through():
    fmt, rows = normalize([{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}])
    assert fmt == "messages"
    assert rows[0]["messages"][1] == {"role": "assistant", "content": "yo"}


def test_alpaca_becomes_conversational_prompt_completion():
    fmt, rows = normalize([{"instruction": "Add", "input": "2 and 3", "output": "5"},
                           {"instruction": "Say hi", "input": "", "output": "hi"}])
    assert fmt == "alpaca"
    assert rows[0] == {"prompt": [{"role": "user", "content": "Add\n\n2 and 3"}],
                       "completion": [{"role": "assistant", "content": "5"}]}
    assert rows[1]["prompt"][0]["content"] == "Say hi"


def test_prompt_completion_and_sharegpt():
    assert normalize([{"prompt": "p", "completion": "c"}])[1][0]["completion"] == [{"role": "assistant", "content": "c"}]
    fmt, rows = normalize([{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}])
    assert fmt == "sharegpt"
    assert [m["role"] for m in rows[0]["messages"]] == ["user", "assistant"]


def test_preference_pairs():
    fmt, rows = normalize([{"prompt": "q", "chosen": "good", "rejected": "bad"}])
    assert fmt == "preference"
    assert rows[0]["chosen"] == [{"role": "assistant", "content": "good"}]
    assert rows[0]["prompt"] == [{"role": "user", "content": "q"}]


def test_unknown_columns_are_named():
    with pytest.raises(DatasetError, match=r"\['question', 'reply'\]"):
        detect_format([{"question": "q", "reply": "r"}])


def test_bad_row_is_numbered():
    rows = [{"messages": [{"role": "user", "content": "ok"}]}, {"messages": [{"role": "wizard", "content": "x"}]}]
    with pytest.raises(DatasetError, match="row 2"):
        normalize(rows)


def test_jsonl_errors_carry_line_numbers(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n{not json\n")
    with pytest.raises(DatasetError, match="line 2"):
        load_rows(path)
    with pytest.raises(FileNotFoundError):
        load_rows(tmp_path / "missing.jsonl")


def test_csv_and_json_array(tmp_path):
    (tmp_path / "d.csv").write_text("prompt,completion\nhello,world\n")
    assert load_rows(tmp_path / "d.csv") == [{"prompt": "hello", "completion": "world"}]
    (tmp_path / "d.json").write_text(json.dumps([{"prompt": "x", "completion": "y"}]))
    assert load_rows(tmp_path / "d.json")[0]["completion"] == "y"
