"""What a run trains on, loaded as the job's config says: the tokenizer (with the job's chat
template), the model (full, LoRA or QLoRA; from a checkpoint's weights where asked), the datasets
(columns mapped, format detected or forced, an eval split carved out), and a checkpoint's adapter
weights. The caller announces each phase first, so a failure here is placed where it happened."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.common import chat_templates, model_folder
from services.trainer import recipe

if TYPE_CHECKING:  # imported where they are used: the zygote imports this module before it forks
    from datasets import Dataset
    from peft import PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def model_config_type(base: str, remote_code: bool) -> str:
    """The model's type from its config.json. A local folder without one (or with a link to a file that
    is gone) is said as such: transformers reads it as a config without model_type, a damaged file."""
    from transformers import AutoConfig

    instead = model_folder.not_a_folder(base)
    if instead is not None:
        raise OSError(f"{base} is a file, not a model folder{instead}")
    gone = model_folder.missing_config(base)
    if gone is not None:
        raise OSError(f"{base} does not appear to have a file named config.json{gone}")
    misfit = model_folder.heads_misfit(base)
    if misfit is not None:
        raise ValueError(f"the model's config.json: {misfit}: its attention layers cannot take the model's weights")
    return str(getattr(AutoConfig.from_pretrained(base, trust_remote_code=remote_code), "model_type", ""))


def tokenizer(base: str, cfg: dict[str, Any], remote_code: bool) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base, trust_remote_code=remote_code)
    if len(tok) <= 1:  # transformers builds an empty tokenizer for a folder without tokenizer files
        raise OSError(f"{base} does not appear to have a file named tokenizer.json or tokenizer_config.json: "
                      f"the tokenizer it gives has {len(tok)} token(s)")
    if cfg.get("chat_template"):
        tok.chat_template = chat_templates.resolve(cfg["chat_template"])
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def model(source: str, cfg: dict[str, Any], precision: str, remote_code: bool, local_rank: int) -> PreTrainedModel:
    """The base model (or a full checkpoint's weights, `source`), quantized and prepared for k-bit
    training for QLoRA; full fine-tuning keeps fp32 master weights."""
    import torch
    from transformers import AutoModelForCausalLM

    quant = recipe.quantization_config(cfg, precision)
    full = cfg.get("adapter") == "ADAPTER_FULL"
    loaded = AutoModelForCausalLM.from_pretrained(
        source,
        dtype=torch.float32 if full or precision == "fp32" else recipe.torch_dtype(precision),
        quantization_config=quant,
        device_map={"": local_rank} if quant is not None else None,
        attn_implementation=cfg["attn_implementation"],
        trust_remote_code=remote_code,
        use_safetensors=True,  # never unpickle weights
    )
    if quant is not None:
        from peft import prepare_model_for_kbit_training

        loaded = prepare_model_for_kbit_training(
            loaded, use_gradient_checkpointing=bool(cfg.get("gradient_checkpointing", False)))
    return loaded


def datasets(cfg: dict[str, Any]) -> tuple[str, Dataset, Dataset | None]:
    """(format, train dataset, eval dataset or None) as the job's dataset settings say."""
    dataset_cfg = cfg["dataset"]
    mapping = dict(dataset_cfg.get("columns") or {})
    if mapping:
        print(f"ftlab: dataset columns mapped: {', '.join(f'{v} -> {k}' for k, v in mapping.items())}", flush=True)
    fmt, train_ds = _load_split(dataset_cfg["uri"], _dataset_format(cfg), mapping)
    eval_ds = None
    if dataset_cfg.get("eval_uri"):
        _, eval_ds = _load_split(dataset_cfg["eval_uri"], fmt, mapping)
    elif float(dataset_cfg.get("eval_split", 0.0)) > 0:
        split = train_ds.train_test_split(test_size=float(dataset_cfg["eval_split"]), seed=int(cfg.get("seed", 42)))
        train_ds, eval_ds = split["train"], split["test"]
    return fmt, train_ds, eval_ds


def check_template_renders(tokenizer: PreTrainedTokenizerBase, train_ds: Dataset, rows: int = 8) -> None:
    """Raise where the chat template renders the first conversations as empty text: TRL would tokenize
    them to nothing, drop them all and fail far from the cause."""
    conversations = [r.get("messages") or (r.get("prompt") or []) + (r.get("completion") or [])
                     for r in train_ds.select(range(min(rows, len(train_ds))))]
    conversations = [c for c in conversations if isinstance(c, list) and c]
    if not conversations or tokenizer.chat_template is None:
        return
    rendered = [str(tokenizer.apply_chat_template(c, tokenize=False)) for c in conversations]
    if all(not text.strip() for text in rendered):
        raise ValueError(f"the chat template renders the first {len(conversations)} conversations as empty text: "
                         "it writes none of their turns (chat_template)")
    same = chat_templates.same_for_all(conversations, rendered)
    if same is not None:
        hint = chat_templates.unknown_name_hint(tokenizer.chat_template)
        raise ValueError(f"the chat template renders the first {len(conversations)} conversations as the same text "
                         f"({same[:60]!r}): it writes none of their turns{hint} (chat_template)")


def _load_split(uri: str, fmt: str | None, columns: dict[str, str]) -> tuple[str, Dataset]:
    import datasets

    from services.common.datasets import load_rows, mapped, normalize

    fmt, rows = normalize(mapped(load_rows(uri), columns), fmt)
    return fmt, datasets.Dataset.from_list(rows)


def _dataset_format(cfg: dict[str, Any]) -> str | None:
    name: str = cfg.get("dataset", {}).get("format", "DATASET_FORMAT_AUTO")
    if name in ("DATASET_FORMAT_AUTO", "DATASET_FORMAT_UNSPECIFIED"):
        return None
    return name.removeprefix("DATASET_FORMAT_").lower()


def adapter_weights(model: PeftModel, checkpoint: Path) -> None:
    """A checkpoint's LoRA weights into the fresh adapter (the same rank and targets; LoRA <-> QLoRA)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = checkpoint / "adapter_model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"checkpoint {checkpoint.name} has no adapter weights ({weights.name})")
    result = set_peft_model_state_dict(model, load_file(str(weights)))
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"checkpoint {checkpoint.name} does not fit this adapter: {result.unexpected_keys[:3]}")
