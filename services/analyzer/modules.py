"""Which modules a model has, for checking LoRA target modules before a run: the model is built on
PyTorch's meta device from its config.json (no weights read, no memory used) and its module names
and types kept, one model at a time in a small cache."""

from __future__ import annotations

import difflib
import functools
import json
import logging
from pathlib import Path

from ftlab.v1 import analyzer_pb2, config_pb2
from services.analyzer import suggestions

log = logging.getLogger(__name__)
# the layer types PEFT's LoRA can wrap (peft.tuners.lora.model's dispatchers)
_WRAPPABLE = frozenset({"Linear", "Embedding", "Conv1d", "Conv2d", "Conv3d", "Conv1D", "MultiheadAttention",
                        "Linear4bit", "Linear8bitLt"})


@functools.lru_cache(maxsize=8)
def module_types(base_model: str) -> dict[str, str] | None:
    """{module name: class name} of the model in a local folder or the Hugging Face cache, or None."""
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        path = Path(base_model).expanduser()
        config = AutoConfig.from_pretrained(str(path) if path.is_dir() else base_model, local_files_only=True,
                                            trust_remote_code=False)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        return {name: type(module).__name__ for name, module in model.named_modules() if name}
    except Exception as exc:  # unknown architecture, offline hub, odd config: nothing to check against
        log.info("no module list for %s: %s", base_model, exc)
        return None


def lora_check(c: config_pb2.TrainingConfig) -> analyzer_pb2.PreflightCheck | None:
    """FAIL naming each target module that matches no module of the model, or only modules LoRA cannot
    wrap, with the nearest names; None when there is nothing to check."""
    targets = [t for t in c.lora.target_modules if t != "all-linear"]
    if c.adapter not in (config_pb2.ADAPTER_LORA, config_pb2.ADAPTER_QLORA, config_pb2.ADAPTER_UNSPECIFIED) \
            or not targets:
        return None
    types = module_types(c.base_model)
    if types is None:
        return None
    leaves = sorted({name.rsplit(".", 1)[-1] for name, kind in types.items() if kind in _WRAPPABLE})
    problems, fixed = [], []
    for target in targets:
        matched = {kind for name, kind in types.items() if name == target or name.endswith("." + target)}
        if not matched:
            near = difflib.get_close_matches(target, leaves, n=1)
            problems.append(f"'{target}' is no module of this model" + (f" (did you mean '{near[0]}'?)" if near else ""))
            fixed += near
        elif not matched & _WRAPPABLE:
            problems.append(f"'{target}' is a {', '.join(sorted(matched))}, which LoRA cannot wrap")
        else:
            fixed.append(target)
    if not problems:
        return analyzer_pb2.PreflightCheck(name="lora_target_modules", status=analyzer_pb2.CHECK_STATUS_PASS,
                                           message=f"every target module is in the model: {', '.join(targets)}")
    wrappable = ", ".join(leaves)
    fix = list(dict.fromkeys(fixed)) or ["all-linear"]
    return analyzer_pb2.PreflightCheck(
        name="lora_target_modules", status=analyzer_pb2.CHECK_STATUS_FAIL,
        message=f"lora.target_modules: {'; '.join(problems)}. LoRA can wrap: {wrappable}",
        suggestions=[suggestions.patch("lora.target_modules", json.dumps(list(c.lora.target_modules)),
                                       json.dumps(fix), "target modules that exist in this model and LoRA can wrap",
                                       "the adapter trains the modules you meant")])
