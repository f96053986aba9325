"""The SDK: friendly config building, and importing without torch."""

import subprocess
import sys

import pytest

from ftlab.config import ConfigError, apply_set, config_from_dict
from ftlab.v1 import config_pb2


def test_enum_short_names_and_nested_fields():
    c = config_from_dict({"adapter": "qlora", "method": "SFT", "precision": "bf16", "lr_scheduler": "constant-with-warmup",
                          "lora": {"rank": 8, "target_modules": "q_proj, v_proj"}})
    assert c.adapter == config_pb2.ADAPTER_QLORA
    assert c.precision == config_pb2.PRECISION_BF16
    assert c.lr_scheduler == config_pb2.LR_SCHEDULER_CONSTANT_WITH_WARMUP
    assert list(c.lora.target_modules) == ["q_proj", "v_proj"]


def test_apply_set_parses_by_field_type():
    c = config_pb2.TrainingConfig()
    for assignment in ("max_steps=20", "learning_rate=3e-4", "packing=true", "dataset.eval_split=0.1",
                       "eval_strategy=steps", "base_model=org/model=v2"):
        apply_set(c, assignment)
    assert (c.max_steps, c.learning_rate, c.packing, c.dataset.eval_split) == (20, 3e-4, True, 0.1)
    assert c.eval_strategy == config_pb2.EVAL_STRATEGY_STEPS
    assert c.base_model == "org/model=v2"
    assert c.HasField("packing")


@pytest.mark.parametrize("assignment, field", [
    ("lora.rnak=3", "lora.rnak"), ("max_steps=ten", "max_steps"), ("max_steps=1.5", "max_steps"),
    ("adapter=lorax", "adapter"), ("packing=maybe", "packing"), ("no_equals", "no_equals"),
])
def test_bad_assignments_name_the_field(assignment, field):
    with pytest.raises(ConfigError) as info:
        apply_set(config_pb2.TrainingConfig(), assignment)
    assert info.value.field == field


def test_sdk_imports_without_torch():
    code = "import sys, ftlab, ftlab.client; from ftlab.v1 import job_service_pb2_grpc; " \
           "print(sorted(m for m in ('torch', 'transformers', 'trl', 'services') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_set_takes_lists_mappings_and_null_as_the_user_writes_them():
    from ftlab import apply_set
    from ftlab.config import ConfigError
    from ftlab.v1 import config_pb2

    c = config_pb2.TrainingConfig()
    apply_set(c, "lora.target_modules=[q_proj, v_proj]")
    assert list(c.lora.target_modules) == ["q_proj", "v_proj"]
    apply_set(c, 'lora.target_modules=["k_proj"]')
    assert list(c.lora.target_modules) == ["k_proj"]
    apply_set(c, 'lora={"rank": 8, "alpha": 16}')
    assert (c.lora.rank, c.lora.alpha, list(c.lora.target_modules)) == (8, 16, ["k_proj"])
    apply_set(c, "learning_rate=2e-4")
    apply_set(c, "learning_rate=null")
    assert not c.HasField("learning_rate")
    apply_set(c, "chat_template={% for m in messages %}{{ m['content'] }}{% endfor %}")  # Jinja stays text
    assert c.chat_template.startswith("{% for")
    apply_set(c, "lora={rank: 4, alpha: 8}")  # a YAML flow mapping, as a job file writes it
    assert (c.lora.rank, c.lora.alpha) == (4, 8)
    apply_set(c, "dataset.columns={prompt: question, completion: answer}")  # a map field
    assert dict(c.dataset.columns) == {"prompt": "question", "completion": "answer"}
    with pytest.raises(ConfigError, match="lora: cannot read"):
        apply_set(c, "lora={rank: [8}")
    with pytest.raises(ConfigError, match="dataset.columns: expected a mapping of names"):
        apply_set(c, "dataset.columns={prompt: [a, b]}")


def test_enum_values_have_names_a_person_reads():
    from ftlab import category_name, phase_name, state_name
    from ftlab.v1 import analyzer_pb2, events_pb2, job_pb2

    assert state_name(job_pb2.JOB_STATE_SUCCEEDED) == state_name("JOB_STATE_SUCCEEDED") == "succeeded"
    assert phase_name(events_pb2.PHASE_DATA_PREP) == "data prep"
    assert category_name(analyzer_pb2.FAILURE_CATEGORY_DATASET_FORMAT) == "DATASET_FORMAT"


def test_the_generated_messages_load_without_grpc_and_the_client_with_it():
    """The training child and its zygote hold RunEvent and TrainingConfig; gRPC does not survive fork()."""
    code = ("import sys\n"
            "from ftlab.v1 import config_pb2, events_pb2\n"
            "import ftlab, ftlab.config, ftlab.names\n"
            "assert 'grpc' not in sys.modules, 'messages pulled in grpc'\n"
            "assert ftlab.Client.__module__ == 'ftlab.client' and 'grpc' in sys.modules\n"
            "assert ftlab.state_name(1) and sorted(dir(ftlab)) and 'Client' in ftlab.__all__\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="no attribute 'Clint'"):
        import ftlab

        ftlab.Clint  # noqa: B018
