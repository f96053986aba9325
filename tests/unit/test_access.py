"""Which files a job may name: the refusals a user meets first, with the field and what to give."""

from __future__ import annotations

import os

import pytest

from services.common.access import Roots, check_dataset, check_model
from services.common.errors import InvalidArgument
from services.common.settings import Paths


@pytest.fixture
def paths(tmp_path):
    return Paths(tmp_path / "home").ensure()


def refusal(call) -> tuple[str, str]:
    with pytest.raises(InvalidArgument) as info:
        call()
    (violation,) = info.value.violations
    return violation.field, violation.description


def test_a_model_page_address_is_refused_with_its_hub_id(paths):
    roots = Roots.from_env(paths, auth_on=False)
    field, why = refusal(lambda: check_model("https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct/tree/main",
                                             "config.base_model", paths, roots))
    assert field == "config.base_model" and "URL" in why and "Qwen/Qwen2.5-0.5B-Instruct" in why
    field, why = refusal(lambda: check_model("s3://bucket/model", "config.base_model", paths, roots))
    assert "URL" in why and "for that page" not in why and "here:" not in why
    field, why = refusal(lambda: check_model("file:///models/tiny", "config.base_model", paths, roots))
    assert "URL" in why and "(here: /models/tiny)" in why
    assert check_model("Qwen/Qwen2.5-0.5B-Instruct", "config.base_model", paths, roots) == "Qwen/Qwen2.5-0.5B-Instruct"


def test_a_dataset_that_is_a_named_pipe_is_refused_a_file_is_not(paths, tmp_path):
    roots = Roots.from_env(paths, auth_on=False)
    os.mkfifo(paths.datasets / "pipe.jsonl")
    (paths.datasets / "rows.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    for value in ("pipe.jsonl", str(paths.datasets / "pipe.jsonl")):
        field, why = refusal(lambda: check_dataset(value, "config.dataset.uri", paths, roots, None))
        assert field == "config.dataset.uri" and "named pipe" in why
    assert check_dataset("rows.jsonl", "config.dataset.uri", paths, roots, None) == (paths.datasets / "rows.jsonl").resolve()
    # a path that is not there yet is said where it is read (pre-flight, the trainer), not here
    assert check_dataset("later.jsonl", "config.dataset.uri", paths, roots, None).name == "later.jsonl"


def test_a_path_with_an_unexpanded_variable_is_refused_naming_it_unless_it_exists_as_written(paths, tmp_path):
    roots = Roots.from_env(paths, auth_on=False)
    for value, variable in (("$MODELS_DIR/tiny", "$MODELS_DIR"), ("${HOME}/models/tiny", "${HOME}"),
                            ("/srv/$USER/tiny", "$USER"), ("%MODELS%\\tiny", "%MODELS%")):
        field, why = refusal(lambda: check_model(value, "config.base_model", paths, roots))
        assert field == "config.base_model" and f"holds {variable}, an environment variable" in why, why
    field, why = refusal(lambda: check_dataset("$DATA/chat.jsonl", "config.dataset.uri", paths, roots, None))
    assert field == "config.dataset.uri" and "$DATA" in why and "environment variable" in why
    # a name that really holds a dollar sign is a name like any other
    (tmp_path / "m$odel").mkdir()
    assert check_model(str(tmp_path / "m$odel"), "config.base_model", paths, roots) == str(tmp_path / "m$odel")
    (paths.datasets / "price$USD.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    assert check_dataset("price$USD.jsonl", "config.dataset.uri", paths, roots, None).name == "price$USD.jsonl"


def test_a_path_with_a_stray_blank_or_a_hub_revision_is_refused_saying_what_to_give(paths, tmp_path):
    roots = Roots.from_env(paths, auth_on=False)
    (paths.datasets / "chat.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    field, why = refusal(lambda: check_dataset("chat.jsonl\n", "config.dataset.uri", paths, roots, None))
    assert field == "config.dataset.uri" and "ends with a newline" in why and "'chat.jsonl' is what to give" in why
    field, why = refusal(lambda: check_model(f" {tmp_path}", "config.base_model", paths, roots))
    assert "starts with a space" in why and repr(str(tmp_path)) in why
    field, why = refusal(lambda: check_model("Qwen/Qwen2.5-0.5B@main", "config.base_model", paths, roots))
    assert field == "config.base_model" and "@main" in why and "(Qwen/Qwen2.5-0.5B)" in why
    # a name that really ends in a space is a name like any other
    (paths.datasets / "odd .jsonl ").write_text('{"prompt": "a", "completion": "b"}\n')
    assert check_dataset("odd .jsonl ", "config.dataset.uri", paths, roots, None).name == "odd .jsonl "


def test_the_written_as_refusals_look_only_inside_allowed_folders_and_at_real_hub_ids(paths, tmp_path):
    allowed = tmp_path / "models"
    allowed.mkdir()
    roots = Roots(models=(allowed.resolve(),), data=(paths.datasets.resolve(),))
    # outside the roots: refused as outside, whatever is there
    field, why = refusal(lambda: check_model("/srv/$USER/tiny", "config.base_model", paths, roots))
    assert "not under a folder" in why
    field, why = refusal(lambda: check_model(f"{allowed}/$USER/tiny", "config.base_model", paths, roots))
    assert "holds $USER" in why
    # an address with %XX escapes is not an environment variable; a relative path with @ is not a hub id
    field, why = refusal(lambda: check_model("user@host:/models/tiny", "config.base_model", paths, roots))
    assert "hub id with" not in why and "relative path" in why
    field, why = refusal(lambda: check_dataset("a%20b%2F.jsonl ", "config.dataset.uri", paths, roots, None))
    assert "environment variable" not in why and "ends with a space" in why
