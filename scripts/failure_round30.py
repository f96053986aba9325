"""The failure corpus's thirtieth round: new causes, written down (with the category and phase a
person gives each) before any of them ran. It leans towards the categories with few causes in the
whole corpus (chosen from the categories' counts, never from a log): quantization methods whose
package is not there, a compiler backend that needs a GPU, chat templates that fail in new ways (one
that calls itself without end, one that reads a key the turns do not have), and a base model of an
architecture a causal language model cannot be built from.

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 30 scores the round alone. A `fix` puts
a case in bench/suggestion_fixes.py.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
from pathlib import Path

ROUND = 30

RECURSIVE_TEMPLATE = "{% macro turn(m) %}{{ turn(m) }}{% endmacro %}{% for m in messages %}{{ turn(m) }}{% endfor %}"
MISSING_KEY_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                        "{{ m['name'].upper() }}<|im_end|>\n{% endfor %}")

SHARED = [
    ("encoder_decoder_as_base", "a base model of an encoder-decoder architecture (T5)", "INVALID_CONFIG",
     "MODEL_LOAD", "config.json says model_type t5 and T5ForConditionalGeneration", {"model": "t5-config"}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER = [
    ("template_recursing_forever", "chat template that calls itself without end", "CHAT_TEMPLATE_INCOMPATIBLE",
     "DATA_PREP", "the job's chat_template is a macro that calls itself for every turn",
     {"config": {"chat_template": RECURSIVE_TEMPLATE}, "fix": "chat_template"}),
    ("template_reading_absent_key", "chat template reading a key the turns do not have",
     "CHAT_TEMPLATE_INCOMPATIBLE", "DATA_PREP", "the job's chat_template writes m['name'].upper() for every turn",
     {"config": {"chat_template": MISSING_KEY_TEMPLATE}, "fix": "chat_template"}),
]

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("template_recursing_forever", "chat template that calls itself without end", "CHAT_TEMPLATE_INCOMPATIBLE",
     "DATA_PREP", "the script's chat template is a macro that calls itself for every turn",
     {"chat_template": RECURSIVE_TEMPLATE}),
    ("template_reading_absent_key", "chat template reading a key the turns do not have",
     "CHAT_TEMPLATE_INCOMPATIBLE", "DATA_PREP", "the script's chat template writes m['name'].upper() for every turn",
     {"chat_template": MISSING_KEY_TEMPLATE}),
    ("gptq_without_its_package", "GPTQ quantization asked where its package is not installed",
     "QUANTIZATION_UNSUPPORTED", "MODEL_LOAD", "from_pretrained with a gptq quantization_config (4 bits)",
     {"model_kwargs": {"quantization_config": {"quant_method": "gptq", "bits": 4}}}),
    ("compile_backend_needing_gpu", "torch.compile with a backend that needs a GPU", "GPU_UNAVAILABLE", "TRAINING",
     "torch_compile True with torch_compile_backend cudagraphs on a CPU-only machine",
     {"args": {"torch_compile": True, "torch_compile_backend": "cudagraphs"}}),
]


def write_models(root: Path, tiny: Path, variant, models: dict[str, str]) -> None:
    """The round's model folders: `variant(name, change)` copies the tiny model and changes it."""

    def t5(path: Path) -> None:
        config = json.loads((path / "config.json").read_text())
        config.update(model_type="t5", architectures=["T5ForConditionalGeneration"], d_model=64, num_layers=2,
                      num_heads=4, d_kv=16, d_ff=128)
        (path / "config.json").write_text(json.dumps(config))

    variant("t5-config", t5)
