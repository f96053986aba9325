"""Chat templates known by name: a job may set `chat_template: chatml` instead of Jinja text.

ChatML is what Qwen and many others use; this one marks the assistant's turns with
{% generation %}, so assistant-only loss works with it. The analyzer suggests it by name where a
tokenizer has no template, or the job's own template fails, and a retry applies it as a value.
"""

from __future__ import annotations

from typing import Any

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}"
    "{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ message['content'] + '<|im_end|>' + '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

NAMED = {"chatml": CHATML}


def same_for_all(conversations: list[Any], rendered: list[str]) -> str | None:
    """The one text a template renders different conversations as, where it renders them all alike (it
    writes none of their turns: e.g. a name this server does not know, taken as Jinja text); else None."""
    distinct = {repr(c) for c in conversations}
    texts = {t.strip() for t in rendered}
    if len(distinct) < 2 or len(texts) != 1:
        return None
    text = next(iter(texts))
    return text or None  # all empty is said apart: it writes nothing


def unknown_name_hint(template: str | None) -> str:
    """Where a template holds no Jinja markup at all, it was most likely meant as a name."""
    if not template or "{{" in template or "{%" in template:
        return ""
    return f"; {template.strip()[:40]!r} is not a template name this server knows ({', '.join(sorted(NAMED))})"


def resolve(value: str) -> str:
    """The Jinja text of a job's chat_template: a known name's template, else the value itself."""
    return NAMED.get(value.strip().lower(), value) if value else value
