"""The trainer's speed decisions: each AUTO made concrete for the machine, overrides kept, reasons given."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from ftlab.v1 import config_pb2
from services.scheduler import jobconfig
from services.trainer.tuning import (
    Machine,
    decide,
    largest_micro_batch,
    micro_batch_candidates,
    token_cap,
    worst_case_tokens,
)

CPU = Machine(device="cpu", cpus=2)
H100 = Machine(device="cuda", cpus=16, bf16=True, gpu_name="NVIDIA H100 80GB HBM3", gpu_memory_bytes=80 << 30,
               has_liger=True)
T4 = Machine(device="cuda", cpus=8, bf16=False, gpu_name="Tesla T4", gpu_memory_bytes=16 << 30)


def resolved(**overrides) -> dict:
    """A job's config as the scheduler resolves it (template defaults under the overrides)."""
    request = json_format.ParseDict({"base_model": "m", "dataset": {"uri": "d.jsonl"}, **overrides},
                                    config_pb2.TrainingConfig())
    return json_format.MessageToDict(jobconfig.resolve("basic", request), preserving_proto_field_name=True)


def test_the_resolved_config_asks_for_the_fast_defaults():
    cfg = resolved()
    assert cfg["padding_free"] is True
    assert cfg["optimizer"] == "OPTIMIZER_AUTO"
    assert {cfg[k] for k in ("liger_kernel", "torch_compile", "auto_micro_batch")} == {"SWITCH_AUTO"}
    assert cfg["dataloader_num_workers"] == -1 and cfg["attn_implementation"] == "auto"


def test_dpo_is_not_padding_free_by_default_and_refuses_it_when_asked():
    assert resolved(method="METHOD_DPO")["padding_free"] is False
    with pytest.raises(jobconfig.InvalidArgument) as err:
        resolved(method="METHOD_DPO", padding_free=True)
    assert [v.field for v in err.value.violations] == ["config.padding_free"]


def test_an_unknown_attention_kernel_is_refused_naming_the_field():
    with pytest.raises(jobconfig.InvalidArgument) as err:
        resolved(attn_implementation="flash9")
    assert [v.field for v in err.value.violations] == ["config.attn_implementation"]


def test_on_cpu_every_auto_is_decided_with_a_reason():
    d = decide(resolved(), CPU, "qwen2")
    c = d.config
    assert c["precision"] == "PRECISION_FP32"
    assert c["optimizer"] == "OPTIMIZER_ADAMW_TORCH_FUSED"
    assert c["attn_implementation"] == "sdpa"
    assert (c["liger_kernel"], c["torch_compile"], c["auto_micro_batch"]) == ("SWITCH_OFF",) * 3
    assert c["dataloader_num_workers"] == 0
    decided = {ch.field for ch in d.choices}
    assert decided == {"precision", "optimizer", "attn_implementation", "liger_kernel", "torch_compile",
                       "dataloader_num_workers", "auto_micro_batch"}
    assert all(ch.reason for ch in d.choices)
    top_level = [v for v in c.values() if not isinstance(v, dict)]
    assert not any("AUTO" in str(v) or v == "auto" for v in top_level) and -1 not in top_level


def test_on_an_h100_it_chooses_bf16_liger_loader_workers_and_the_micro_batch_search():
    d = decide(resolved(), H100, "qwen2")
    c = d.config
    assert c["precision"] == "PRECISION_BF16"
    assert c["liger_kernel"] == "SWITCH_ON"
    assert c["auto_micro_batch"] == "SWITCH_ON"
    assert c["dataloader_num_workers"] == 4
    assert c["attn_implementation"] == "sdpa"  # flash-attn not installed
    assert decide(resolved(), Machine(**{**H100.__dict__, "has_flash_attn": True}), "qwen2").config[
        "attn_implementation"] == "flash_attention_2"


def test_liger_stays_off_where_it_cannot_apply_and_says_why():
    reasons = {ch.field: ch.reason for ch in decide(resolved(), H100, "gpt2").choices}
    assert decide(resolved(), H100, "gpt2").config["liger_kernel"] == "SWITCH_OFF" and "gpt2" in reasons["liger_kernel"]
    no_liger = Machine(**{**H100.__dict__, "has_liger": False})
    d = decide(resolved(), no_liger, "qwen2")
    assert d.config["liger_kernel"] == "SWITCH_OFF"
    assert "not installed" in next(ch.reason for ch in d.choices if ch.field == "liger_kernel")


def test_a_gpu_without_bf16_gets_fp16():
    assert decide(resolved(), T4, "llama").config["precision"] == "PRECISION_FP16"


def test_loader_workers_are_shared_between_the_processes_of_a_run():
    eight_gpus = Machine(**{**H100.__dict__, "world_size": 8})
    assert decide(resolved(), eight_gpus, "qwen2").config["dataloader_num_workers"] == 1  # 16 CPUs / 8 - 1


def test_every_explicit_setting_is_kept_as_given():
    cfg = resolved(precision="PRECISION_BF16", optimizer="OPTIMIZER_ADAMW_TORCH", liger_kernel="SWITCH_OFF",
                   torch_compile="SWITCH_ON", auto_micro_batch="SWITCH_OFF", dataloader_num_workers=2,
                   attn_implementation="eager", padding_free=False)
    d = decide(cfg, H100, "qwen2")
    assert d.choices == []
    assert {k: d.config[k] for k in cfg} == cfg


def test_micro_batch_candidates_keep_the_effective_batch_exactly():
    assert micro_batch_candidates(8, 8) == [64, 32, 16, 8]
    assert micro_batch_candidates(4, 6) == [24, 12, 8, 6, 4]
    assert micro_batch_candidates(3, 1) == [3]


def test_the_search_takes_the_largest_that_fits_and_falls_back_to_the_request():
    assert largest_micro_batch(8, 8, lambda b: b <= 16) == (16, 4, [64, 32, 16])
    assert largest_micro_batch(8, 8, lambda b: True) == (64, 1, [64])
    assert largest_micro_batch(8, 8, lambda b: False) == (8, 8, [64, 32, 16])
    assert largest_micro_batch(2, 1, lambda b: True) == (2, 1, [])


def test_the_heaviest_micro_batch_is_the_longest_examples():
    lengths = [5, 100, 7, 60, 3]
    assert worst_case_tokens(lengths, 2, padding_free=True) == 160
    assert worst_case_tokens(lengths, 2, padding_free=False) == 200
    assert worst_case_tokens(lengths, 9, padding_free=True) == 175


def test_padding_free_micro_batches_are_capped_only_without_a_variable_length_kernel():
    cfg = {"padding_free": True, "max_seq_length": 1024, "attn_implementation": "sdpa"}
    assert token_cap(cfg) == 4096
    assert token_cap({**cfg, "attn_implementation": "flash_attention_2"}) is None
    assert token_cap({**cfg, "padding_free": False}) is None
