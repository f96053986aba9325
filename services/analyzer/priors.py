"""Where an exception was raised says much about what went wrong: the innermost frame inside an
installed library, matched against this table, gives a category (and a phase) when no rule on the
exception's type or words decided. A row is (path inside site-packages, function name or "" for
any, category, phase or "" when the place does not tell). The first matching row wins; extend it
when a library grows a new place that fails for a known reason.
"""

from __future__ import annotations

import re

from services.analyzer.logparse import Frame

PRIORS: list[tuple[str, str, str, str]] = [
    # argument checks: a setting the library refuses
    ("transformers/training_args.py", "", "INVALID_CONFIG", "STARTUP"),
    ("trl/trainer/sft_config.py", "", "INVALID_CONFIG", "STARTUP"),
    ("trl/trainer/dpo_config.py", "", "INVALID_CONFIG", "STARTUP"),
    ("torch/utils/data/sampler.py", "", "INVALID_CONFIG", ""),
    ("torch/utils/data/dataloader.py", "__init__", "INVALID_CONFIG", ""),
    ("torch/optim/", "__init__", "INVALID_CONFIG", "STARTUP"),
    ("transformers/generation/configuration_utils.py", "", "INVALID_CONFIG", ""),
    ("peft/config.py", "", "INVALID_CONFIG", "MODEL_LOAD"),
    ("torch/nn/modules/", "__init__", "INVALID_CONFIG", ""),  # a layer refusing its size or rate
    ("transformers/optimization.py", "", "INVALID_CONFIG", "STARTUP"),  # the learning-rate schedules
    # reading data
    ("datasets/packaged_modules/", "", "DATASET_FORMAT", "DATA_PREP"),
    ("datasets/builder.py", "", "DATASET_FORMAT", "DATA_PREP"),
    ("datasets/arrow_writer.py", "", "DATASET_FORMAT", "DATA_PREP"),
    ("datasets/table.py", "", "DATASET_FORMAT", "DATA_PREP"),
    ("datasets/features/", "", "DATASET_FORMAT", "DATA_PREP"),
    ("datasets/data_files.py", "", "DATASET_NOT_FOUND", "DATA_PREP"),
    ("pyarrow/", "", "DATASET_FORMAT", "DATA_PREP"),
    ("pandas/io/", "", "DATASET_FORMAT", "DATA_PREP"),
    ("json/decoder.py", "", "DATASET_FORMAT", "DATA_PREP"),
    ("csv.py", "", "DATASET_FORMAT", "DATA_PREP"),
    ("trl/data_utils.py", "", "DATASET_FORMAT", "DATA_PREP"),  # TRL reading a row's shape (a missing key: above)
    # templates
    ("jinja2/", "", "CHAT_TEMPLATE_INCOMPATIBLE", "DATA_PREP"),
    ("transformers/utils/chat_template_utils.py", "", "CHAT_TEMPLATE_INCOMPATIBLE", "DATA_PREP"),
    # finding a model
    ("huggingface_hub/", "", "MODEL_NOT_FOUND", "MODEL_LOAD"),
    ("transformers/utils/hub.py", "", "MODEL_NOT_FOUND", "MODEL_LOAD"),
    ("transformers/models/auto/configuration_auto.py", "", "INVALID_CONFIG", "MODEL_LOAD"),
    ("transformers/models/auto/auto_factory.py", "", "INVALID_CONFIG", "MODEL_LOAD"),
    # reading weights and state
    ("safetensors/", "load", "CHECKPOINT_CORRUPT", ""),
    ("safetensors/", "safe_open", "CHECKPOINT_CORRUPT", ""),
    ("torch/serialization.py", "load", "CHECKPOINT_CORRUPT", ""),
    ("torch/serialization.py", "_load", "CHECKPOINT_CORRUPT", ""),
    ("torch/serialization.py", "__init__", "CHECKPOINT_CORRUPT", ""),  # the zip reader of a file cut short
    ("torch/nn/modules/module.py", "load_state_dict", "CHECKPOINT_CORRUPT", ""),
    ("transformers/modeling_utils.py", "_load_state_dict_into_meta_model", "CHECKPOINT_CORRUPT", "MODEL_LOAD"),
    ("transformers/core_model_loading.py", "", "CHECKPOINT_CORRUPT", "MODEL_LOAD"),
    # adapters, quantization, devices, kernels
    ("peft/tuners/", "_create_and_replace", "LORA_TARGET_MODULES", "MODEL_LOAD"),
    ("peft/tuners/", "_create_new_module", "LORA_TARGET_MODULES", "MODEL_LOAD"),
    ("peft/tuners/tuners_utils.py", "inject_adapter", "LORA_TARGET_MODULES", "MODEL_LOAD"),
    ("bitsandbytes/", "", "QUANTIZATION_UNSUPPORTED", ""),
    ("transformers/quantizers/", "", "QUANTIZATION_UNSUPPORTED", "MODEL_LOAD"),
    ("torch/cuda/__init__.py", "_lazy_init", "GPU_UNAVAILABLE", ""),
    ("accelerate/state.py", "", "GPU_UNAVAILABLE", "STARTUP"),
    ("transformers/utils/import_utils.py", "", "DEPENDENCY_MISSING", ""),
    ("transformers/utils/versions.py", "", "DEPENDENCY_MISSING", ""),  # require_version
    ("transformers/dependency_versions_check.py", "", "DEPENDENCY_MISSING", ""),
    ("importlib/metadata/", "", "DEPENDENCY_MISSING", ""),
    ("transformers/integrations/sdpa_attention.py", "", "", ""),  # the forward pass: says nothing
]

# the last of these in the path: a virtual environment's ".venv/lib/python3.11/site-packages/jinja2/..."
# is inside jinja2, not inside "site-packages"
_SITE = re.compile(r"^.*(?:site-packages|dist-packages|<site-packages>|<stdlib>|lib/python3\.\d+)/(?P<inner>.+)$")


def innermost_library_frame(frames: list[Frame]) -> tuple[str, Frame] | None:
    """(path inside the library folder, frame) of the innermost frame in an installed library."""
    for frame in reversed(frames):
        m = _SITE.search(frame.file)
        if m:
            return m["inner"], frame
    return None


def prior(frames: list[Frame]) -> tuple[str, str, str] | None:
    """(category, phase, where) from the innermost library frame, or None."""
    found = innermost_library_frame(frames)
    if found is None:
        return None
    inner, frame = found
    for path, func, category, phase in PRIORS:
        if inner.startswith(path) and (not func or frame.func == func):
            return (category, phase, f"{inner}:{frame.func}") if category else None
    return None
