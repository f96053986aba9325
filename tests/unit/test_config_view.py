"""`ftlab get`'s grouped config: every field of TrainingConfig shown once, in words, with what a job
changed from its template marked."""

from __future__ import annotations

import io

from rich.console import Console

from ftlab.v1 import config_pb2
from services.cli.config_view import GROUPS, print_config
from services.scheduler import jobconfig, templates


def _paths(descriptor, prefix=""):
    for f in descriptor.fields:
        if f.message_type is not None and f.message_type.name in ("LoraConfig", "DatasetConfig", "SampleConfig"):
            yield from _paths(f.message_type, prefix + f.name + ".")
        else:
            yield prefix + f.name


def test_every_field_is_in_exactly_one_group():
    grouped = [p for _, fields in GROUPS for p in fields]
    assert sorted(grouped) == sorted(_paths(config_pb2.TrainingConfig.DESCRIPTOR))
    assert len(grouped) == len(set(grouped))


def _shown(job_config, template_name):
    out = io.StringIO()
    template = templates.get_template(template_name).resolved
    print_config(Console(file=out, width=200, color_system=None), job_config, template, template_name)
    return out.getvalue()


def test_what_the_job_changed_is_marked_with_the_templates_value():
    overrides = config_pb2.TrainingConfig(base_model="./tiny", learning_rate=1e-3, max_steps=30,
                                          adapter=config_pb2.ADAPTER_QLORA)
    overrides.dataset.uri = "chat.jsonl"
    text = _shown(jobconfig.resolve("basic", overrides), "basic")
    lines = {line.split()[1] if line.split()[0] == "*" else line.split()[0]: line for line in text.splitlines()
             if line.startswith("     ")}
    assert lines["learning_rate"].split()[:3] == ["*", "learning_rate", "0.001"]
    assert "(template: 0.0002)" in lines["learning_rate"]
    assert lines["adapter"].split()[:3] == ["*", "adapter", "qlora"] and "(template: lora)" in lines["adapter"]
    assert lines["base_model"].split()[:3] == ["*", "base_model", "./tiny"]
    assert not lines["lora.rank"].startswith("     *") and lines["lora.rank"].split()[-1] == "16"
    assert lines["lora.target_modules"].split()[-1] == "[all-linear]"  # a list, not eaten as markup
    for heading in ("model", "data", "method and adapter", "optimization", "evaluation", "speed"):
        assert f"    {heading}\n" in text
    assert "ADAPTER_" not in text and "EVAL_STRATEGY_" not in text and "PRECISION_" not in text


def test_a_template_of_its_own_is_no_change():
    overrides = config_pb2.TrainingConfig(base_model="m")
    overrides.dataset.uri = "d.jsonl"
    text = _shown(jobconfig.resolve("domain-expert", overrides), "domain-expert")
    marked = [line.split()[1] for line in text.splitlines() if line.startswith("     *")]
    assert marked == ["base_model", "dataset.uri"], marked
