"""Chat templates known by name: a job may set `chat_template: chatml` instead of Jinja text.

ChatML is what Qwen and many others use; this one marks the assistant's turns with
{% generation %}, so assistant-only loss works with it. The analyzer suggests it by name where a
tokenizer has no template, or the job's own template fails, and a retry applies it as a value.
"""

from __future__ import annotations

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


def resolve(value: str) -> str:
    """The Jinja text of a job's chat_template: a known name's template, else the value itself."""
    return NAMED.get(value.strip().lower(), value) if value else value
