"""Merge a LoRA adapter into its base model and save the result as safetensors.

    python -m services.artifacts.merge --base MODEL --adapter DIR --out DIR

Run by the artifacts service in a child process, so that the model's memory (and torch) never stays
in the service. The base loads in its own precision (a QLoRA adapter merges into the unquantized
base); model code shipped with a model runs only if an administrator allows it.
"""

from __future__ import annotations

import argparse
import sys


def merge(base: str, adapter: str, out: str) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from services.common import settings

    remote_code = settings.trust_remote_code()
    model = AutoModelForCausalLM.from_pretrained(base, dtype="auto", trust_remote_code=remote_code,
                                                 use_safetensors=True)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(adapter, trust_remote_code=remote_code).save_pretrained(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True)
    parser.add_argument("--adapter", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    merge(args.base, args.adapter, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
