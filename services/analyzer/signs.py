"""What the failure rules look for, as data and plain functions of the log's text and metrics (no
rule objects here): the functions that read data or a checkpoint back, the errnos of a full disk, the
shapes of a setting or a row of the wrong kind, and a loss that diverged. services/analyzer/rules.py
uses them."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

# transformers' Trainer reading a checkpoint's state back when it resumes
RESUMING = ("_load_from_checkpoint", "_load_rng_state", "_load_optimizer_and_scheduler", "_load_scaler",
            "_load_callback_state", "load_from_json")
# our dataset reader's and the datasets library's entry points
READING_DATA = frozenset({"load_rows", "_load_split", "load_dataset", "read_rows", "_read_json", "_read_csv",
                          "_read_parquet", "from_patterns"})

# two columns of one row joined where one is turns and the other text
MIXED_KINDS = re.compile(r"""concatenate (str|list) \(not "(list|str)"\)|"""
                         r"""operand type\(s\) for \+: '(str|list)' and '(list|str)'""")
# text where a mapping or a number is (a setting written as text)
WRONG_TYPE = re.compile(r"'str' object (has no attribute|is not)|instances of '\w+' and 'str'|"
                        r"instances of 'str' and '\w+'|must be a mapping, not str")
# an evaluation setting, as the library's own line reads it (self.eval_steps, args.metric_for_best_model)
EVAL_SETTING = re.compile(r"\b(self|args)\.(eval_(steps|strategy|delay|accumulation_steps|on_start)|"
                          r"per_device_eval_batch_size|metric_for_best_model|load_best_model_at_end|"
                          r"greater_is_better)\b")
# the functions that map over a dataset's rows (ours, TRL's and datasets')
MAPPING_ROWS = frozenset({"tokenize_fn", "tokenize", "_tokenize", "_prepare_dataset", "apply_function", "map"})

# errno values that mean the disk (or the file's allowed size) is full: ENOSPC, EDQUOT, EFBIG; as
# Python prints them ("[Errno 28]") and as Rust's std::io prints them in safetensors' errors
DISK_ERRNOS = {"28", "122", "27"}
ERRNO = re.compile(r"\[Errno (\d+)\]|os error (\d+)|\bcode: (\d+), kind:")

# a line that looks rows of a weight or an embedding up by token ids (self.weight[self.token_indices[...]])
TOKEN_ROWS = re.compile(r"\b(weight|embed\w*)\s*\[[^\]]*token|\btoken\w*\]")

# a quantization method, named with the package it needs ("Loading a GPTQ quantized model requires optimum")
QUANTIZER_PACKAGE = (r"\b(GPTQ|AWQ|HQQ|EETQ|AQLM|VPTQ|SpQR|HIGGS|quanto|torchao|compressed[-_ ]tensors|fbgemm)\b"
                     r"[^\n]*(requires|is not installed|pip install)")

# transformers' words when the path it reads as a config is not JSON: a file given as the model when
# that path is not a .json file (a model folder's config.json would be)
_CONFIG_AT = re.compile(r"the config file at '([^']*)' is not a valid JSON file")


def file_given_as_model(messages: Sequence[str]) -> bool:
    return any((m := _CONFIG_AT.search(text)) is not None and not m[1].lower().endswith(".json") for text in messages)


def disk_errno(message: str) -> bool:
    """The message carries an errno (or Rust's io kind) that means the disk or the file's allowed size is full."""
    found = {n for m in ERRNO.finditer(message) for n in m.groups() if n}
    return bool(found & DISK_ERRNOS) or bool(re.search(r"kind: (StorageFull|FileTooLarge|QuotaExceeded)|"
                                                          r"File too large", message))


def diverged(metrics: Sequence[dict[str, Any]], factor: float = 5.0) -> bool:
    """Loss or gradient norm NaN/inf in the logged metrics (runs can 'succeed' on garbage), or a loss
    that climbed over `factor` times its best and twice where it began (the trainer's guard)."""
    seen = [m["loss"] for m in metrics if isinstance(m.get("loss"), float) and math.isfinite(m["loss"])]
    if len(seen) >= 2 and min(seen) > 0 and any(x > factor * min(seen[:i]) and x > 2 * seen[0]
                                                for i, x in enumerate(seen) if i):
        return True
    for m in metrics:
        for key in ("loss", "grad_norm", "eval_loss"):
            v = m.get(key)
            if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
                return True
            if isinstance(v, str) and v.lower() in ("nan", "inf", "-inf"):
                return True
    return False
