"""A chat template that writes none of the turns: said by the trainer before TRL trains on it (a name the
server does not know is Jinja text, which renders every row as the name itself)."""

from __future__ import annotations

import pytest

from services.common import chat_templates
from services.trainer.loading import check_template_renders

ROWS = [{"messages": [{"role": "user", "content": f"{a}+{a}="}, {"role": "assistant", "content": str(2 * a)}]}
        for a in range(6)]


def test_a_template_that_renders_every_conversation_alike_is_found_and_a_real_one_is_not():
    conversations = [r["messages"] for r in ROWS]
    assert chat_templates.same_for_all(conversations, ["llama3"] * 6) == "llama3"
    assert chat_templates.same_for_all(conversations, [f"text {i}" for i in range(6)]) is None
    assert chat_templates.same_for_all(conversations[:1], ["llama3"]) is None  # one conversation proves nothing
    assert chat_templates.same_for_all(conversations, [""] * 6) is None  # empty text is said apart
    assert chat_templates.unknown_name_hint("llama3") == "; 'llama3' is not a template name this server knows (chatml)"
    assert chat_templates.unknown_name_hint(chat_templates.CHATML) == ""


def test_the_trainer_stops_before_training_on_a_template_name_it_does_not_know(tiny_model):
    import datasets
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    train = datasets.Dataset.from_list(ROWS)
    check_template_renders(tokenizer, train)  # the model's own template writes the turns
    tokenizer.chat_template = chat_templates.resolve("llama3")
    with pytest.raises(ValueError, match=r"renders the first 6 conversations as the same text \('llama3'\): it writes "
                                         r"none of their turns; 'llama3' is not a template name this server knows"):
        check_template_renders(tokenizer, train)
    tokenizer.chat_template = chat_templates.resolve("chatml")
    check_template_renders(tokenizer, train)
