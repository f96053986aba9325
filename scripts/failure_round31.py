"""The failure corpus's thirty-first round: new causes, written down (with the category and phase a
person gives each) before any of them ran. Through FineTune Lab's trainer it tries settings that pass
submission and fail in the run, each with a one-field fix (a LoRA target that is a block of layers,
not a layer; sample prompts generated at temperature 0); through the plain script, settings that TRL
or PEFT refuse by other roads (arguments for a model already built, a dataset said to be prepared
when it is not, a schedule without the steps it needs, trainable token ids past the vocabulary).

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 31 scores the round alone. A `fix` puts
a case in bench/suggestion_fixes.py.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

ROUND = 31

SHARED: list[tuple] = []

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER = [
    ("lora_target_block_of_layers", "LoRA target that is a block of layers, not a layer", "LORA_TARGET_MODULES",
     "MODEL_LOAD", "lora.target_modules [mlp]: the name of each layer's MLP block, which holds the linear layers",
     {"config": {"adapter": "lora", "lora": {"rank": 4, "alpha": 8, "target_modules": ["mlp"]}},
      "fix": "lora.target_modules"}),
    ("samples_at_temperature_zero", "sample prompts generated at temperature 0", "INVALID_CONFIG", "TRAINING",
     "samples.prompts [\"1+1=\"] with samples.temperature 0", {
         "config": {"samples": {"prompts": ["1+1="], "temperature": 0, "max_new_tokens": 4}},
         "fix": "samples.temperature"}),
]

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("init_arguments_for_built_model", "model loading arguments given for a model already built", "INVALID_CONFIG",
     "STARTUP", "SFTConfig model_init_kwargs {dtype: float32} while the script passes the loaded model",
     {"args": {"model_init_kwargs": {"dtype": "float32"}}}),
    ("dataset_said_prepared", "a dataset said to be prepared when its rows are raw turns", "INVALID_CONFIG",
     "TRAINING", "SFTConfig dataset_kwargs {skip_prepare_dataset: true} on messages rows",
     {"args": {"dataset_kwargs": {"skip_prepare_dataset": True}}}),
    ("warmup_stable_decay_without_steps", "warmup-stable-decay schedule without its decay steps", "INVALID_CONFIG",
     "STARTUP", "lr_scheduler_type warmup_stable_decay with no lr_scheduler_kwargs",
     {"args": {"lr_scheduler_type": "warmup_stable_decay"}}),
    ("trainable_tokens_past_vocab", "trainable token ids past the vocabulary", "TOKEN_ID_OUT_OF_RANGE",
     "MODEL_LOAD", "LoraConfig trainable_token_indices [100000] on a 512-row embedding", {
         "peft": {"r": 4, "lora_alpha": 8, "target_modules": "all-linear", "trainable_token_indices": [100000]}}),
]
