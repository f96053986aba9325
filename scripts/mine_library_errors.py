"""Mine the installed training libraries for the errors they raise, and map each to a failure category.

    .venv/bin/python scripts/mine_library_errors.py   # rewrites services/analyzer/data/library_errors.json

Every `raise SomeError("message ...")` whose message is a literal (an f-string's fixed parts kept, its
fields made wildcards) becomes an entry: package, module, function, exception class, the message as a
pattern, and a category and phase. The category comes from MAPPING below, the first row whose module
prefix and message words match; an entry no row fits is kept with category "UNKNOWN", on purpose: the
analyzer then knows where the message comes from but does not guess why. Run it again when a pinned
version changes (tests/unit/test_library_errors.py checks the versions).
"""

from __future__ import annotations

import ast
import json
import re
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "services" / "analyzer" / "data" / "library_errors.json"
PACKAGES = ["transformers", "trl", "peft", "datasets", "accelerate", "torch", "bitsandbytes", "safetensors",
            "huggingface_hub"]
DISTRIBUTIONS = {"huggingface_hub": "huggingface-hub"}
# parts of the big libraries that a fine-tuning run goes through (torch's compiler, ONNX and the
# per-model files of transformers raise thousands of messages a training job never meets)
KEEP = {
    "torch": ("torch/utils/data/", "torch/serialization.py", "torch/cuda/", "torch/nn/modules/",
              "torch/optim/", "torch/amp/", "torch/nn/functional.py", "torch/_tensor.py", "torch/storage.py"),
    "transformers": ("transformers/",),
}
SKIP = ("transformers/models/", "/tests/", "/testing_utils", "/commands/", "transformers/onnx/",
        "transformers/pipelines/", "transformers/data/", "transformers/kernels/")
ALLOW_MODELS = ("transformers/models/auto/",)

# (module prefix, message words (regex, case-insensitive), category, phase): first match wins
MAPPING: list[tuple[str, str, str, str]] = [
    ("", r"out of memory", "CUDA_OOM", ""),
    ("", r"no space left|disk quota", "DISK_FULL", ""),
    ("", r"chat[ _]template (is not set|not set|is missing|not found|is None)|no chat template|does not have a chat "
         r"template", "CHAT_TEMPLATE_MISSING", "DATA_PREP"),
    ("", r"chat[ _]template", "CHAT_TEMPLATE_INCOMPATIBLE", "DATA_PREP"),
    ("", r"generation.*(marker|keyword)|assistant_only_loss|assistant mask", "CHAT_TEMPLATE_INCOMPATIBLE", "DATA_PREP"),
    ("", r"target.?modules?", "LORA_TARGET_MODULES", "MODEL_LOAD"),
    ("", r"bitsandbytes|quantiz|4.?bit|8.?bit", "QUANTIZATION_UNSUPPORTED", "MODEL_LOAD"),
    ("", r"bf16|bfloat16|fp16|float16|mixed precision|half precision", "PRECISION_UNSUPPORTED", "STARTUP"),
    # "accelerator" alone names accelerate's Accelerator class far more often than a missing device
    ("", r"cuda (is not|not) available|no cuda|no gpu|requires a gpu|gpu (is )?not available|no accelerator|"
         r"accelerator (is not|not) available|not compiled with cuda|invalid device ordinal", "GPU_UNAVAILABLE", ""),
    ("", r"(is not installed|pip install|requires the .* (library|package)|package .* not found|"
         r"(does not|doesn't) seem to be installed|version \S+ or (higher|above|later))", "DEPENDENCY_MISSING", ""),
    ("", r"eval_dataset|evaluation strategy|eval_strategy", "EVAL_CONFIG", "STARTUP"),
    ("", r"checkpoint.*(not found|does not exist|no valid)|(can't find a|no) valid checkpoint", "CHECKPOINT_NOT_FOUND",
     "STARTUP"),
    ("", r"max_length|max_seq_length|sequence length|max_position|longer than", "SEQUENCE_TOO_LONG", ""),
    ("safetensors/", r"", "CHECKPOINT_CORRUPT", ""),
    ("torch/serialization.py", r"", "CHECKPOINT_CORRUPT", ""),
    ("", r"state_dict|size mismatch|header|deserializ|corrupt|unpickl", "CHECKPOINT_CORRUPT", ""),
    ("huggingface_hub/", r"repo|revision|offline|connect|not found|token", "MODEL_NOT_FOUND", "MODEL_LOAD"),
    ("transformers/utils/hub.py", r"", "MODEL_NOT_FOUND", "MODEL_LOAD"),
    ("", r"does not appear to have (a )?file|is not a local folder|valid model identifier", "MODEL_NOT_FOUND",
     "MODEL_LOAD"),
    ("transformers/modeling_utils.py", r"no file named|can't load the model for|neither a state dict nor checkpoint",
     "MODEL_NOT_FOUND", "MODEL_LOAD"),
    # the model's own files as transformers reads them: a config that is not JSON, values that cannot
    # build the model, weights that do not fit it; and model-loading settings the machine or model refuses
    ("transformers/configuration_utils.py", r"not a valid json", "CHECKPOINT_CORRUPT", "MODEL_LOAD"),
    ("transformers/configuration_utils.py", r"can't load the configuration", "MODEL_NOT_FOUND", "MODEL_LOAD"),
    ("transformers/configuration_utils.py", r"not a multiple|must be|must take|unrecognized|should contain|"
                                            r"can only|isn't in", "INVALID_CONFIG", "MODEL_LOAD"),
    ("transformers/tokenization_utils_base.py", r"can't load tokenizer", "MODEL_NOT_FOUND", "MODEL_LOAD"),
    ("transformers/utils/loading_report.py", r"mismatched|state_dict|conversion", "CHECKPOINT_CORRUPT", "MODEL_LOAD"),
    ("transformers/modeling_utils.py", r"not available on cpu|compute capability", "GPU_UNAVAILABLE", "MODEL_LOAD"),
    ("transformers/modeling_utils.py", r"requires at least version", "DEPENDENCY_MISSING", "MODEL_LOAD"),
    ("transformers/modeling_utils.py", r"unknown dtype|seems to be incorrect", "CHECKPOINT_CORRUPT", "MODEL_LOAD"),
    ("transformers/modeling_utils.py", r"attn_implementation|attention implementation|flash attention|"
                                       r"flex_attention|`dtype`|checkpointing", "INVALID_CONFIG", "MODEL_LOAD"),
    ("accelerate/utils/dataclasses.py", r"no available devices", "GPU_UNAVAILABLE", "STARTUP"),
    ("accelerate/utils/dataclasses.py", r"is not available\. please install|please upgrade|please update|"
                                        r"version must be >=", "DEPENDENCY_MISSING", "STARTUP"),
    ("accelerate/utils/dataclasses.py", r"invalid|must be|not supported|requires `|only available|not yet implemented",
     "INVALID_CONFIG", "STARTUP"),
    # a split of the rows asked with sizes that leave one side empty or too small: the split is a setting
    ("datasets/arrow_dataset.py", r"test_size|train_size|aforementioned parameters", "INVALID_CONFIG", "DATA_PREP"),
    ("datasets/", r"columns?|features?|schema|key", "DATASET_SCHEMA", "DATA_PREP"),
    ("datasets/", r"", "DATASET_FORMAT", "DATA_PREP"),
    ("trl/data_utils.py", r"", "DATASET_SCHEMA", "DATA_PREP"),
    ("", r"dataset", "DATASET_FORMAT", "DATA_PREP"),
    ("transformers/training_args.py", r"", "INVALID_CONFIG", "STARTUP"),
    # a version of a package that is too old for the setting asked
    ("", r"requires `?(py)?torch ?>=|requires `?(peft|transformers|accelerate|trl|datasets|bitsandbytes) ?>=|"
         r"upgrade (peft|transformers|torch|pytorch|accelerate|trl|datasets|bitsandbytes)", "DEPENDENCY_MISSING", ""),
    ("trl/trainer/", r"must be|should be|cannot be|not supported|invalid|expected|only|unknown|unsupported|"
                     r"requires|not possible|cannot be used|together|non-negative|at least", "INVALID_CONFIG", "STARTUP"),
    ("torch/utils/data/", r"should be|must be|expected|invalid", "INVALID_CONFIG", ""),
    ("torch/optim/", r"invalid|must be|should be|expected|not supported|does not support|only supports",
     "INVALID_CONFIG", "STARTUP"),
    # a loader worker that gave no batch within the loader's timeout
    ("torch/utils/data/dataloader.py", r"timed out", "STUCK", ""),
    ("peft/", r"must be|should be|invalid|not supported|expected|unknown|unsupported|does not support|"
              r"does not work|please set|requires|cannot be used|can only be used|together|not (yet )?implemented",
     "INVALID_CONFIG", "MODEL_LOAD"),
    # torch's layers refusing a constructor argument (a dropout above 1, a negative size)
    ("torch/nn/modules/", r"has to be|must be|should be|invalid|expected|cannot be", "INVALID_CONFIG", ""),
    # a config.json without its model_type: the model folder's own file is incomplete
    ("transformers/models/auto/", r"should have a `?model_type`? key", "CHECKPOINT_CORRUPT", "MODEL_LOAD"),
    ("transformers/models/auto/", r"unrecognized|does not recognize|model type", "INVALID_CONFIG", "MODEL_LOAD"),
    # the learning-rate schedules refusing their arguments
    ("transformers/optimization.py", r"should be|must be|invalid|expected|only|requires", "INVALID_CONFIG", "STARTUP"),
    # settings that do not go together, as the Trainer and accelerate check them before training; a
    # package they need that cannot be imported is a missing package
    ("transformers/trainer", r"failed to import|could not import|cannot import", "DEPENDENCY_MISSING", "STARTUP"),
    ("transformers/trainer", r"not possible|cannot be used|together|requires|not supported|must|should|unknown|"
                             r"invalid|only", "INVALID_CONFIG", "STARTUP"),
    ("accelerate/accelerator.py", r"requires (py)?torch|to be installed", "DEPENDENCY_MISSING", "STARTUP"),
    ("accelerate/accelerator.py", r"not possible|cannot|can't|together|requires|not supported|must|should|unknown|"
                                  r"invalid|only", "INVALID_CONFIG", "STARTUP"),
]


def _template(node: ast.expr) -> str | None:
    """The message as a regex: literal text escaped, formatted fields as wildcards."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        parts = [re.escape(v.value) if isinstance(v, ast.Constant) else ".*?" for v in node.values]
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _template(node.left), _template(node.right)
        if left is None and right is None:
            return None
        return (left or ".*?") + (right or ".*?")
    return None


def _fixed_chars(pattern: str) -> int:
    return len(re.sub(r"\\(.)", r"\1", pattern.replace(".*?", "")))


def mine_file(path: Path, rel: str) -> list[dict]:
    try:
        tree = ast.parse(path.read_text(errors="replace"))
    except SyntaxError:
        return []
    out = []
    stack: list[str] = []

    def visit(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stack.append(node.name)
            for child in ast.iter_child_nodes(node):
                visit(child)
            stack.pop()
            return
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
            func = node.exc.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            pattern = _template(node.exc.args[0])
            if name and pattern and _fixed_chars(pattern) >= 12:
                out.append({"module": rel, "function": stack[-1] if stack else "", "exception": name,
                            "pattern": pattern})
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def categorize(entry: dict) -> tuple[str, str]:
    text = re.sub(r"\\(.)", r"\1", entry["pattern"].replace(".*?", " "))
    for prefix, words, category, phase in MAPPING:
        if entry["module"].startswith(prefix) and (not words or re.search(words, text, re.I)):
            return category, phase
    return "UNKNOWN", ""


def mine() -> dict:
    site = Path(metadata.distribution("transformers").locate_file(""))
    entries, versions = [], {}
    for package in PACKAGES:
        root = site / package
        if not root.is_dir():
            continue
        versions[package] = metadata.version(DISTRIBUTIONS.get(package, package))
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(site).as_posix()
            if not rel.startswith(KEEP.get(package, (package + "/",))):
                continue
            if any(s in "/" + rel for s in SKIP) and not rel.startswith(ALLOW_MODELS):
                continue
            for entry in mine_file(path, rel):
                entry["category"], entry["phase"] = categorize(entry)
                entries.append(entry)
    unique = {(e["module"], e["pattern"]): e for e in entries}
    return {"versions": versions, "entries": sorted(unique.values(), key=lambda e: (e["module"], e["pattern"]))}


def main() -> int:
    data = mine()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=0, separators=(",", ":")) + "\n")
    known = sum(e["category"] != "UNKNOWN" for e in data["entries"])
    print(f"{len(data['entries'])} messages from {', '.join(f'{k} {v}' for k, v in data['versions'].items())}; "
          f"{known} mapped to a category, {len(data['entries']) - known} deliberately UNKNOWN; wrote "
          f"{OUT.relative_to(REPO)} ({OUT.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
