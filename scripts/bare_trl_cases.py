"""The failure corpus's bare-TRL cases: each one real way a plain TRL script fails, as data.

Run by scripts/bare_trl_corpus.py through scripts/bare_trl.py (datasets, transformers, TRL and
PEFT, none of FineTune Lab's code). A case names its cause, the category and phase a person would
give it (decided from the cause, before the run), the script's TRL arguments over BASE_ARGS, and
the model and dataset it runs on (see MODELS and DATASETS of scripts/failure_corpus.py). A cause
the trainer's cases already have keeps that cause's half of the split; a new cause is split by the
parity of its sha256. `act` and `resume` are as in scripts/failure_cases.py.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

from failure_cases import FOURTH_ROUND
from failure_rounds import ROUNDS

BASE_ARGS = {"max_steps": 3, "per_device_train_batch_size": 2, "logging_steps": 1, "report_to": [],
             "use_cpu": True, "max_length": 64, "save_strategy": "no", "eval_strategy": "no"}
LORA = {"r": 4, "lora_alpha": 8, "target_modules": "all-linear"}
EVAL_EVERY_2 = {"eval_strategy": "steps", "eval_steps": 2}


def bare(name, cause, category, phase, how, args=None, data="chat.jsonl", model="tiny", trainer="sft", peft=LORA,
         **extra):
    return dict(name=name, cause=cause, category=category, phase=phase, how=how, args={**BASE_ARGS, **(args or {})},
                data=data, model=model, trainer=trainer, peft=peft, **extra)


def fifth(name, cause, category, phase, how, extra, module):
    """A row of a later round's table (scripts/failure_round5.py, ...) as a bare case."""
    extra = dict(extra)
    args = {"max_steps": 200} if "act" in extra and extra["act"][0] == "signal" else \
        {"max_steps": 4} if "resume" in extra else {}
    return bare(name, cause, category, phase, how, args={**args, **extra.pop("args", {})}, round=module.ROUND,
                **extra)


CASES = [
    # the dataset, through datasets' own builders
    bare("binary_as_jsonl", "binary file named .jsonl", "DATASET_FORMAT", "DATA_PREP",
         "the dataset is random bytes with a .jsonl name", data="binary.jsonl"),
    bare("not_parquet", "parquet file that is not parquet", "DATASET_FORMAT", "DATA_PREP",
         "the .parquet dataset holds JSON lines", data="not.parquet"),
    bare("empty_jsonl", "empty dataset file", "DATASET_FORMAT", "DATA_PREP", "the dataset file is empty",
         data="empty.jsonl"),
    bare("json_of_numbers", "JSON array of numbers", "DATASET_FORMAT", "DATA_PREP",
         "the .json dataset is a list of numbers", data="numbers.json"),
    bare("jsonl_of_strings", "JSONL lines that are not objects", "DATASET_FORMAT", "DATA_PREP",
         "every line of the .jsonl file is a JSON string", data="strings.jsonl"),
    bare("csv_without_rows", "CSV with a header and no rows", "DATASET_FORMAT", "DATA_PREP",
         "the CSV dataset has a header line only", data="header-only.csv"),
    bare("json_trailing_garbage", "JSON file with text after the document", "DATASET_FORMAT", "DATA_PREP",
         "a .json dataset whose array is followed by stray text", data="trailing.json"),
    bare("parquet_cut_short", "Parquet file cut short", "DATASET_FORMAT", "DATA_PREP",
         "a real Parquet dataset cut to half its bytes", data="cut.parquet"),
    bare("eval_file_binary", "binary eval file", "DATASET_FORMAT", "DATA_PREP",
         "the eval file is random bytes; the training file is fine", eval="binary.jsonl", args=EVAL_EVERY_2),
    bare("eval_file_missing", "eval dataset path that does not exist", "DATASET_NOT_FOUND", "DATA_PREP",
         "the eval file does not exist", eval="missing-eval.jsonl", args=EVAL_EVERY_2),
    bare("dpo_on_chat_rows", "DPO on rows without chosen/rejected", "DATASET_SCHEMA", "DATA_PREP",
         "DPOTrainer on a messages dataset", trainer="dpo"),
    bare("dpo_without_rejected", "preference rows without rejected", "DATASET_SCHEMA", "DATA_PREP",
         "DPOTrainer on rows with prompt and chosen but no rejected", trainer="dpo", data="chosen-only.jsonl"),
    bare("dpo_on_prompt_completion", "DPO on prompt/completion rows", "DATASET_SCHEMA", "DATA_PREP",
         "DPOTrainer on prompt/completion rows", trainer="dpo", data="prompt-completion.jsonl"),
    bare("alpaca_without_output", "instruction rows without output", "DATASET_SCHEMA", "DATA_PREP",
         "SFTTrainer on rows with only an instruction column", data="instruction-only.jsonl"),
    bare("sharegpt_rows", "conversations in sharegpt form, which TRL does not read", "DATASET_SCHEMA", "DATA_PREP",
         "SFTTrainer on sharegpt rows (conversations of from/value turns)", data="odd-roles.jsonl"),
    bare("text_field_missing", "a dataset_text_field the rows do not have", "DATASET_SCHEMA", "DATA_PREP",
         "dataset_text_field 'content' on rows whose text is under 'text'", data="text.jsonl",
         args={"dataset_text_field": "content"}),
    bare("eval_unknown_columns", "eval rows with columns no format names", "DATASET_SCHEMA", "DATA_PREP",
         "the eval file holds question/answer rows; the training file is fine", eval="qa.jsonl", args=EVAL_EVERY_2),
    # chat templates
    bare("no_template_dpo", "tokenizer without chat template, DPO", "CHAT_TEMPLATE_MISSING", "DATA_PREP",
         "DPO on conversational preference rows with a tokenizer that has no chat template", trainer="dpo",
         model="no-template", data="preference-chat.jsonl"),
    bare("template_syntax_error", "chat template that does not compile", "CHAT_TEMPLATE_INCOMPATIBLE", "DATA_PREP",
         "the script sets a chat template with an unclosed for block",
         chat_template="{% for m in messages %}{{ m['content'] }}"),
    bare("template_unknown_filter", "chat template using a filter that does not exist",
         "CHAT_TEMPLATE_INCOMPATIBLE", "DATA_PREP", "the script's chat template pipes content through a missing filter",
         chat_template="{% for m in messages %}{{ m['content'] | shout }}{% endfor %}"),
    bare("template_raises", "chat template that raises on the rows", "CHAT_TEMPLATE_INCOMPATIBLE", "DATA_PREP",
         "the script's chat template raises for the user role",
         chat_template="{% for m in messages %}{% if m['role'] == 'user' %}"
                       "{{ raise_exception('only system and assistant roles are supported') }}{% endif %}"
                       "{{ m['content'] }}{% endfor %}"),
    # the model
    bare("model_path_missing", "model folder that does not exist", "MODEL_NOT_FOUND", "MODEL_LOAD",
         "the model path does not exist", model="missing"),
    bare("model_without_config", "model folder without config.json", "MODEL_NOT_FOUND", "MODEL_LOAD",
         "the model folder has no config.json", model="no-config"),
    bare("model_without_weights", "model folder without weights", "MODEL_NOT_FOUND", "MODEL_LOAD",
         "the model folder has no weights file", model="no-weights"),
    bare("model_without_tokenizer", "model folder without tokenizer files", "MODEL_NOT_FOUND", "MODEL_LOAD",
         "the model folder has no tokenizer files", model="no-tokenizer"),
    bare("weights_truncated", "base weights cut short", "CHECKPOINT_CORRUPT", "MODEL_LOAD",
         "model.safetensors cut to half its size", model="truncated-weights"),
    bare("weights_header_garbage", "base weights with a damaged header", "CHECKPOINT_CORRUPT", "MODEL_LOAD",
         "the first bytes of model.safetensors overwritten", model="garbage-weights"),
    bare("weights_shape_mismatch", "weights that do not fit the config", "CHECKPOINT_CORRUPT", "MODEL_LOAD",
         "config.json says intermediate_size 96 while the weights hold 128", model="shape-mismatch"),
    bare("unknown_model_type", "config naming an unknown architecture", "INVALID_CONFIG", "MODEL_LOAD",
         "config.json's model_type is unknown to transformers", model="unknown-type"),
    bare("lora_target_norm", "LoRA target of an unsupported layer type", "LORA_TARGET_MODULES", "MODEL_LOAD",
         "LoraConfig target_modules names the RMSNorm layers",
         peft={"r": 4, "lora_alpha": 8, "target_modules": ["input_layernorm"]}),
    bare("lora_target_whole_model", "LoRA target naming the whole model", "LORA_TARGET_MODULES", "MODEL_LOAD",
         "LoraConfig target_modules names the top-level 'model' module",
         peft={"r": 4, "lora_alpha": 8, "target_modules": ["model"]}),
    bare("flash_attention_on_cpu", "flash attention without flash_attn", "DEPENDENCY_MISSING", "MODEL_LOAD",
         "attn_implementation flash_attention_2 where flash_attn is not installed",
         model_kwargs={"attn_implementation": "flash_attention_2"}),
    bare("flash_attention_3_missing", "flash attention 3 without its package", "DEPENDENCY_MISSING", "MODEL_LOAD",
         "attn_implementation flash_attention_3 where flash_attn_3 is not installed",
         model_kwargs={"attn_implementation": "flash_attention_3"}),
    # settings
    bare("prefetch_without_workers", "prefetch factor with no loader workers", "INVALID_CONFIG", "STARTUP",
         "dataloader_prefetch_factor 4 with dataloader_num_workers 0",
         args={"dataloader_prefetch_factor": 4, "dataloader_num_workers": 0}),
    bare("eval_steps_zero", "evaluation every 0 steps", "INVALID_CONFIG", "STARTUP",
         "eval_strategy steps with eval_steps 0", eval="chat.jsonl", args={"eval_strategy": "steps", "eval_steps": 0}),
    bare("fp16_on_cpu", "fp16 where there is no GPU", "PRECISION_UNSUPPORTED", "STARTUP", "fp16 True with use_cpu",
         args={"fp16": True}),
    bare("negative_learning_rate", "negative learning rate", "INVALID_CONFIG", "STARTUP", "learning_rate -0.001",
         args={"learning_rate": -1e-3}),
    bare("negative_weight_decay", "negative weight decay", "INVALID_CONFIG", "STARTUP", "weight_decay -0.1",
         args={"weight_decay": -0.1}),
    bare("adam_beta_out_of_range", "Adam beta of 1 or more", "INVALID_CONFIG", "STARTUP", "adam_beta2 1.5",
         args={"adam_beta2": 1.5}),
    bare("unknown_scheduler", "learning-rate scheduler that does not exist", "INVALID_CONFIG", "STARTUP",
         "lr_scheduler_type 'cosine_wobble'", args={"lr_scheduler_type": "cosine_wobble"}),
    bare("unknown_optimizer", "optimizer name that does not exist", "INVALID_CONFIG", "STARTUP",
         "optim 'adamw_wobble'", args={"optim": "adamw_wobble"}),
    bare("batch_size_zero", "micro-batch of 0", "INVALID_CONFIG", "STARTUP", "per_device_train_batch_size 0",
         args={"per_device_train_batch_size": 0}),
    bare("accumulation_zero", "gradient accumulation of 0 steps", "INVALID_CONFIG", "STARTUP",
         "gradient_accumulation_steps 0", args={"gradient_accumulation_steps": 0}),
    bare("warmup_ratio_over_one", "warmup ratio over 1", "INVALID_CONFIG", "STARTUP", "warmup_ratio 2",
         args={"warmup_ratio": 2.0}),
    bare("logging_steps_zero", "logging every 0 steps", "INVALID_CONFIG", "STARTUP",
         "logging_strategy steps with logging_steps 0", args={"logging_steps": 0}),
    bare("negative_workers", "negative number of loader workers", "INVALID_CONFIG", "STARTUP",
         "dataloader_num_workers -2", args={"dataloader_num_workers": -2}),
    bare("seed_out_of_range", "seed out of numpy's range", "INVALID_CONFIG", "STARTUP", "seed -1",
         args={"seed": -1}),
    bare("report_to_missing", "report_to an integration that is not installed", "DEPENDENCY_MISSING", "STARTUP",
         "report_to ['wandb'] where wandb is not installed", args={"report_to": ["wandb"]}),
    bare("load_best_mismatch", "load best model with mismatched save and eval strategies", "EVAL_CONFIG", "STARTUP",
         "load_best_model_at_end with eval every 2 steps and no saving", eval="chat.jsonl",
         args={**EVAL_EVERY_2, "load_best_model_at_end": True, "save_strategy": "no"}),
    bare("best_metric_not_computed", "best-model metric that evaluation does not compute", "EVAL_CONFIG",
         "EVALUATION", "metric_for_best_model eval_accuracy, which evaluation does not report", eval="chat.jsonl",
         args={**EVAL_EVERY_2, "save_strategy": "steps", "save_steps": 2, "max_steps": 4,
               "load_best_model_at_end": True, "metric_for_best_model": "eval_accuracy"}),
    # what happens to the process
    bare("sigsegv_in_training", "process killed by SIGSEGV", "KILLED_BY_SIGNAL", "TRAINING",
         "SIGSEGV at the first logged step", act=("signal", 11), args={"max_steps": 200}),
    bare("sigabrt_in_training", "process aborted (SIGABRT)", "KILLED_BY_SIGNAL", "TRAINING",
         "SIGABRT at the first logged step", act=("signal", 6), args={"max_steps": 200}),
    bare("sigbus_in_training", "process killed by SIGBUS", "KILLED_BY_SIGNAL", "TRAINING",
         "SIGBUS at the first logged step", act=("signal", 7), args={"max_steps": 200}),
    bare("sigquit_in_training", "process killed by SIGQUIT", "KILLED_BY_SIGNAL", "TRAINING",
         "SIGQUIT at the first logged step", act=("signal", 3), args={"max_steps": 200}),
    bare("sigterm_in_training", "process terminated (SIGTERM)", "KILLED_BY_SIGNAL", "TRAINING",
         "SIGTERM at the first logged step", act=("signal", 15), args={"max_steps": 200}),
    bare("address_space_full_finetune", "full fine-tuning past an address-space limit", "HOST_OOM", "TRAINING",
         "RLIMIT_AS at what the process holds plus 16 MiB at the first logged step of full fine-tuning, batch 32",
         act=("rlimit_as", 16 << 20), peft=None, data="long.jsonl",
         args={"max_steps": 40, "per_device_train_batch_size": 32, "max_length": 512}),
    bare("file_size_limit_on_save", "checkpoint write past a file-size limit", "DISK_FULL", "CHECKPOINT_SAVE",
         "RLIMIT_FSIZE of 64 KiB at the first logged step; the checkpoint at step 2 hits it",
         act=("rlimit_fsize", 64 << 10), args={"max_steps": 4, "save_strategy": "steps", "save_steps": 2}),
    bare("learning_rate_climb", "loss that climbs without NaN", "NAN_OR_DIVERGENCE", "TRAINING",
         "full fine-tuning at learning rate 1 with no clipping, constant schedule", peft=None,
         args={"learning_rate": 1.0, "max_grad_norm": 0.0, "max_steps": 30, "lr_scheduler_type": "constant"}),
    # resuming from a real checkpoint of a good run, damaged
    *[bare(f"resume_{how}", cause, category, "STARTUP", f"resume_from_checkpoint a checkpoint whose {what}",
           resume=how, args={"max_steps": 4})
      for how, cause, category, what in [
          ("optimizer", "damaged optimizer state", "CHECKPOINT_CORRUPT", "optimizer.pt is cut short"),
          ("state", "damaged trainer state", "CHECKPOINT_CORRUPT", "trainer_state.json is not JSON"),
          ("adapter", "damaged adapter weights", "CHECKPOINT_CORRUPT", "adapter_model.safetensors is cut short"),
          ("scheduler", "damaged scheduler state", "CHECKPOINT_CORRUPT", "scheduler.pt is garbage"),
          ("rng", "damaged RNG state", "CHECKPOINT_CORRUPT", "rng_state.pth is cut short"),
          ("missing", "checkpoint that does not exist", "CHECKPOINT_NOT_FOUND", "folder was deleted"),
          ("empty", "checkpoint folder with nothing in it", "CHECKPOINT_NOT_FOUND", "folder is empty")]],
    # the fourth round: the same causes as the trainer's fourth round
    *[bare(*row[:5], **row[5]) for row in FOURTH_ROUND],
    bare("resume_adapter_config", "damaged adapter config in a checkpoint", "CHECKPOINT_CORRUPT", "STARTUP",
         "resume_from_checkpoint a checkpoint whose adapter_config.json is not JSON", resume="adapter_config",
         args={"max_steps": 4}),
    bare("resume_full_weights", "damaged full-model checkpoint weights", "CHECKPOINT_CORRUPT", "STARTUP",
         "resume full fine-tuning from a checkpoint whose model.safetensors is cut short", resume="full_weights",
         peft=None, args={"max_steps": 4}),
    # the fifth round onwards (scripts/failure_rounds.py)
    *[fifth(*row, module=m) for m in ROUNDS for row in m.SHARED + m.BARE],
]
