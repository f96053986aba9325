"""A micro-batch chosen after the Trainer is built (the GPU search's result) keeps the effective batch:
the same optimizer steps, tokens and losses as the requested micro-batch with its accumulation."""

from __future__ import annotations

import pytest

from services.trainer import recipe, tuning

pytestmark = pytest.mark.slow


def build(tiny_model, tmp_path, rows, micro: int, accumulation: int):
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTTrainer

    set_seed(0)
    cfg = {"eval_strategy": "EVAL_STRATEGY_NO", "num_epochs": 1, "max_steps": 3, "lr_scheduler": "LR_SCHEDULER_CONSTANT",
           "per_device_train_batch_size": micro, "per_device_eval_batch_size": micro,
           "gradient_accumulation_steps": accumulation, "learning_rate": 1e-3, "max_seq_length": 40, "save_steps": 0,
           "precision": "PRECISION_FP32", "optimizer": "OPTIMIZER_ADAMW_TORCH_FUSED", "padding_free": True,
           "dataloader_num_workers": 0, "seed": 0}
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation="sdpa")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    trainer = SFTTrainer(model=model, args=recipe.sft_arguments(cfg, str(tmp_path), "cpu"),
                         train_dataset=datasets.Dataset.from_list(rows), processing_class=tokenizer)
    trainer.train_dataset = recipe.truncate(trainer.train_dataset, 40)
    return trainer


def test_a_micro_batch_applied_after_build_keeps_the_effective_batch(tmp_path, tiny_model):
    rows = [{"messages": [{"role": "user", "content": f"q {i}"},
                          {"role": "assistant", "content": " ".join(["word"] * (1 + (i * 37) % 50))}]}
            for i in range(48)]
    requested = build(tiny_model, tmp_path / "a", rows, micro=2, accumulation=4)
    requested.train()
    searched = build(tiny_model, tmp_path / "b", rows, micro=2, accumulation=4)
    tuning.apply_micro_batch(searched, 8, 1)
    searched.train()

    def history(trainer):
        return [h["loss"] for h in trainer.state.log_history if "loss" in h]

    assert searched.state.train_batch_size == 8 and requested.state.train_batch_size == 2
    assert searched.state.global_step == requested.state.global_step == 3
    assert searched.state.num_input_tokens_seen == requested.state.num_input_tokens_seen
    assert history(searched) == pytest.approx(history(requested), rel=1e-4)
