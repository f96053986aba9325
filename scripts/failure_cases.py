"""The failure corpus's cases: each one real way a FineTune Lab job fails, as data.

A case names its cause (one distinct way in; the split into a development and a test half is by
cause), the category and phase a person would give it (decided from the cause, before the run),
the job config (friendly JSON, as `ftlab submit` takes it), the model and dataset it runs on (made
by scripts/failure_corpus.py: see MODELS and DATASETS there), and what is done to the running
child, if anything:
    act: ("signal", N) at the first training step; ("rlimit_as", extra bytes) or ("rlimit_fsize", bytes)
         set on the child at its first step; ("stop", seconds) SIGSTOP after that long, with
         step_timeout for the watchdog.
    resume: a checkpoint made by a good run first, then damaged as named ("optimizer", "adapter",
            "state", "missing", "empty").
    fix: the TrainingConfig field at fault, where changing it fixes the job (decided from the cause,
         before any run or analysis); absent where the fix is outside the config (the data, the model
         files, the machine). bench/suggestion_fixes.py checks the analyzer's suggestions against it.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

from failure_rounds import ROUNDS

BASE = {"max_steps": 3, "logging_steps": 1, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
        "max_seq_length": 64, "save_steps": 0, "eval_strategy": "no"}


def case(name, cause, category, phase, how, config=None, model="tiny", data="chat.jsonl", **extra):
    return dict(name=name, cause=cause, category=category, phase=phase, how=how,
                config={**BASE, **(config or {})}, model=model, data=data, **extra)


def later(*args, round=2, **kwargs):
    """A case of a later round: its cause is split by itself (see failure_corpus.split_of)."""
    return case(*args, round=round, **kwargs)


def fifth(name, cause, category, phase, how, extra, module):
    """A row of a later round's table (scripts/failure_round5.py, ...) as a case: a signalled run long
    enough to be signalled, a resumed one a step past its checkpoint."""
    extra = dict(extra)
    config = {"max_steps": 40} if "act" in extra and extra["act"][0] == "signal" else \
        {"max_steps": 4} if "resume" in extra else {}
    extra["config"] = {**config, **extra.get("config", {})}
    return later(name, cause, category, phase, how, round=module.ROUND, **extra)


# The fourth round's causes that run on any runner as they are (this table and scripts/bare_trl_cases.py
# both take them): name, cause, category, phase, how, and the model or dataset it runs on.
FOURTH_ROUND = [
    ("utf16_jsonl", "dataset file in UTF-16", "DATASET_FORMAT", "DATA_PREP",
     "the .jsonl dataset is encoded in UTF-16", {"data": "utf16.jsonl"}),
    ("ragged_csv", "CSV whose rows have more fields than its header", "DATASET_FORMAT", "DATA_PREP",
     "every CSV row has three fields under a two-column header", {"data": "ragged.csv"}),
    ("json_object", "JSON object instead of a list of rows", "DATASET_FORMAT", "DATA_PREP",
     "the .json dataset is one object holding the rows under a key", {"data": "object.json"}),
    ("directory_as_dataset", "a folder given as the dataset file", "DATASET_NOT_FOUND", "DATA_PREP",
     "the dataset path is a folder named folder.jsonl", {"data": "folder.jsonl"}),
    ("empty_model_folder", "empty model folder", "MODEL_NOT_FOUND", "MODEL_LOAD",
     "the model folder exists and holds nothing", {"model": "empty-folder"}),
    ("weights_renamed", "weights under a name transformers does not look for", "MODEL_NOT_FOUND", "MODEL_LOAD",
     "the weights file is named weights.safetensors.bak", {"model": "weights-renamed"}),
    ("tilde_model_path", "model path starting with ~, not expanded", "MODEL_NOT_FOUND", "MODEL_LOAD",
     "the model path is ~/no-such-models/tiny, which no one expands", {"model": "tilde"}),
    ("model_path_is_file", "model path naming a file, not a folder", "MODEL_NOT_FOUND", "MODEL_LOAD",
     "the model path names the model's config.json file", {"model": "file"}),
    ("weights_zeroed", "base weights overwritten with zeros", "CHECKPOINT_CORRUPT", "MODEL_LOAD",
     "model.safetensors keeps its size but holds only zero bytes", {"model": "zeroed-weights"}),
    ("config_not_json", "model config.json that is not JSON", "CHECKPOINT_CORRUPT", "MODEL_LOAD",
     "the model's config.json holds YAML", {"model": "config-not-json"}),
]


CASES = [
    # the dataset
    case("train_file_missing", "dataset path that does not exist", "DATASET_NOT_FOUND", "DATA_PREP",
         "dataset.uri names a file that does not exist", data="missing.jsonl"),
    case("eval_file_missing", "eval dataset path that does not exist", "DATASET_NOT_FOUND", "DATA_PREP",
         "dataset.eval_uri names a file that does not exist",
         config={"dataset": {"eval_uri": "@data/missing-eval.jsonl"}, "eval_strategy": "steps", "eval_steps": 2}),
    case("binary_as_jsonl", "binary file named .jsonl", "DATASET_FORMAT", "DATA_PREP",
         "the dataset is random bytes with a .jsonl name", data="binary.jsonl"),
    case("not_parquet", "parquet file that is not parquet", "DATASET_FORMAT", "DATA_PREP",
         "the .parquet dataset holds JSON lines, not Parquet", data="not.parquet"),
    case("empty_jsonl", "empty dataset file", "DATASET_FORMAT", "DATA_PREP",
         "the dataset file is empty", data="empty.jsonl"),
    case("json_of_numbers", "JSON array of numbers", "DATASET_FORMAT", "DATA_PREP",
         "the .json dataset is a list of numbers, not of records", data="numbers.json"),
    case("jsonl_of_strings", "JSONL lines that are not objects", "DATASET_FORMAT", "DATA_PREP",
         "every line of the .jsonl file is a JSON string, not an object", data="strings.jsonl"),
    case("eval_file_binary", "binary eval file", "DATASET_FORMAT", "DATA_PREP",
         "the eval dataset is random bytes; the training file is fine",
         config={"dataset": {"eval_uri": "@data/binary.jsonl"}, "eval_strategy": "steps", "eval_steps": 2}),
    case("csv_without_rows", "CSV with a header and no rows", "DATASET_FORMAT", "DATA_PREP",
         "the CSV dataset has a header line only", data="header-only.csv"),
    # its fix became a config field when dataset.columns was added (the cause says which: the rows'
    # question and answer are a prompt and a completion under other names)
    case("question_answer_columns", "records with unknown columns", "DATASET_SCHEMA", "DATA_PREP",
         "rows hold question/answer, which no SFT format names", data="qa.jsonl", fix="dataset.columns"),
    case("dpo_on_chat_rows", "DPO on rows without chosen/rejected", "DATASET_SCHEMA", "DATA_PREP",
         "method DPO on a messages dataset", config={"method": "dpo"}, fix="method"),
    case("alpaca_without_output", "instruction rows without output", "DATASET_SCHEMA", "DATA_PREP",
         "rows have instruction but no output", data="instruction-only.jsonl"),
    case("messages_format_forced_on_prompts", "format forced against the rows", "DATASET_SCHEMA", "DATA_PREP",
         "dataset.format MESSAGES on prompt/completion rows",
         config={"dataset": {"format": "messages"}}, data="prompt-completion.jsonl", fix="dataset.format"),
    # templates
    case("no_template_chat", "tokenizer without chat template, SFT", "CHAT_TEMPLATE_MISSING", "DATA_PREP",
         "the tokenizer has no chat template and the rows are conversations", model="no-template", fix="chat_template"),
    case("no_template_dpo", "tokenizer without chat template, DPO", "CHAT_TEMPLATE_MISSING", "DATA_PREP",
         "DPO on conversational preference rows with a tokenizer that has no chat template",
         model="no-template", data="preference-chat.jsonl", config={"method": "dpo"}, fix="chat_template"),
    case("assistant_loss_plain_template", "assistant-only loss without generation markers",
         "CHAT_TEMPLATE_INCOMPATIBLE", "DATA_PREP",
         "assistant_only_loss with a job chat_template that has no {% generation %} markers",
         config={"assistant_only_loss": True, "chat_template":
                 "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"},
         fix="assistant_only_loss"),
    case("template_syntax_error", "chat template that does not compile", "CHAT_TEMPLATE_INCOMPATIBLE", "DATA_PREP",
         "the job's chat_template has an unclosed for block",
         config={"chat_template": "{% for m in messages %}{{ m['content'] }}"}, fix="chat_template"),
    case("template_raises", "chat template that raises on the rows", "CHAT_TEMPLATE_INCOMPATIBLE", "DATA_PREP",
         "the job's chat_template raises for a role the rows use",
         config={"chat_template": "{% for m in messages %}{% if m['role'] == 'user' %}"
                 "{{ raise_exception('only system and assistant roles are supported') }}{% endif %}"
                 "{{ m['content'] }}{% endfor %}"}, fix="chat_template"),
    # the model
    case("model_path_missing", "model folder that does not exist", "MODEL_NOT_FOUND", "MODEL_LOAD",
         "base_model names a folder that does not exist", model="missing"),
    case("hub_id_offline", "hub id with the hub unreachable", "MODEL_NOT_FOUND", "MODEL_LOAD",
         "base_model is a hub id and the hub cannot be reached (HF_HUB_OFFLINE=1)", model="hub:Qwen/Qwen2.5-0.5B",
         env={"HF_HUB_OFFLINE": "1"}),
    case("model_without_config", "model folder without config.json", "MODEL_NOT_FOUND", "MODEL_LOAD",
         "the model folder has its weights and tokenizer but no config.json", model="no-config"),
    case("model_without_weights", "model folder without weights", "MODEL_NOT_FOUND", "MODEL_LOAD",
         "the model folder has config and tokenizer but no weights file", model="no-weights"),
    case("relative_model_path", "relative model path", "MODEL_NOT_FOUND", "MODEL_LOAD",
         "base_model is ./tiny, relative to where the user stood, not to the trainer", model="relative"),
    case("weights_truncated", "base weights cut short", "CHECKPOINT_CORRUPT", "MODEL_LOAD",
         "the base model's model.safetensors is cut to half its size", model="truncated-weights"),
    case("weights_header_garbage", "base weights with a damaged header", "CHECKPOINT_CORRUPT", "MODEL_LOAD",
         "the first bytes of the base model's model.safetensors are overwritten", model="garbage-weights"),
    case("weights_shape_mismatch", "weights that do not fit the config", "CHECKPOINT_CORRUPT", "MODEL_LOAD",
         "config.json says intermediate_size 96 while the weights hold 128", model="shape-mismatch"),
    case("unknown_model_type", "config naming an unknown architecture", "INVALID_CONFIG", "MODEL_LOAD",
         "config.json's model_type names an architecture transformers does not know", model="unknown-type"),
    case("lora_target_misspelled", "LoRA target that does not exist", "LORA_TARGET_MODULES", "MODEL_LOAD",
         "lora.target_modules is only a misspelled module name",
         config={"adapter": "lora", "lora": {"target_modules": ["q_projj"]}}, fix="lora.target_modules"),
    case("lora_target_norm", "LoRA target of an unsupported layer type", "LORA_TARGET_MODULES", "MODEL_LOAD",
         "lora.target_modules names the RMSNorm layers, which LoRA cannot wrap",
         config={"adapter": "lora", "lora": {"target_modules": ["input_layernorm"]}}, fix="lora.target_modules"),
    case("vocab_smaller_than_tokenizer", "embedding smaller than the tokenizer", "TOKEN_ID_OUT_OF_RANGE", "TRAINING",
         "the model's embedding has 300 rows while its tokenizer has 512 ids", model="small-vocab"),
    case("flash_attention_on_cpu", "flash attention without flash_attn", "DEPENDENCY_MISSING", "MODEL_LOAD",
         "attn_implementation flash_attention_2 where flash_attn is not installed",
         config={"attn_implementation": "flash_attention_2"}, fix="attn_implementation"),
    # resuming
    case("resume_optimizer_damaged", "damaged optimizer state", "CHECKPOINT_CORRUPT", "STARTUP",
         "resume from a checkpoint whose optimizer.pt is cut short", resume="optimizer", config={"max_steps": 4}),
    case("resume_state_damaged", "damaged trainer state", "CHECKPOINT_CORRUPT", "STARTUP",
         "resume from a checkpoint whose trainer_state.json is not JSON", resume="state", config={"max_steps": 4}),
    case("resume_adapter_damaged", "damaged adapter weights", "CHECKPOINT_CORRUPT", "STARTUP",
         "resume from a checkpoint whose adapter_model.safetensors is cut short", resume="adapter",
         config={"max_steps": 4}),
    case("resume_missing", "checkpoint that does not exist", "CHECKPOINT_NOT_FOUND", "STARTUP",
         "resume from a checkpoint folder that was deleted", resume="missing", config={"max_steps": 4}),
    case("resume_empty", "checkpoint folder with nothing in it", "CHECKPOINT_NOT_FOUND", "STARTUP",
         "resume from a checkpoint folder that is empty", resume="empty", config={"max_steps": 4}),
    # settings
    case("fp16_on_cpu", "fp16 where there is no GPU", "PRECISION_UNSUPPORTED", "STARTUP",
         "precision FP16 on a CPU-only machine", config={"precision": "fp16"}, fix="precision"),
    case("prefetch_without_workers", "prefetch factor with no loader workers", "INVALID_CONFIG", "STARTUP",
         "dataloader_prefetch_factor 4 with dataloader_num_workers 0",
         config={"dataloader_num_workers": 0, "dataloader_prefetch_factor": 4}, fix="dataloader_prefetch_factor"),
    case("eval_steps_zero", "evaluation every 0 steps", "INVALID_CONFIG", "STARTUP",
         "eval_strategy steps with eval_steps 0 and an eval split",
         config={"eval_strategy": "steps", "eval_steps": 0, "dataset": {"eval_split": 0.2}}, fix="eval_steps"),
    case("eval_without_eval_data", "evaluation asked with no eval data", "EVAL_CONFIG", "STARTUP",
         "eval_strategy steps with no eval_uri and no eval_split",
         config={"eval_strategy": "steps", "eval_steps": 2, "dataset": {"eval_split": 0}}, fix="eval_strategy"),
    # what happens to the process
    case("sigsegv_in_training", "process killed by SIGSEGV", "KILLED_BY_SIGNAL", "TRAINING",
         "SIGSEGV sent to the child at its first training step", act=("signal", 11), config={"max_steps": 40}),
    case("sigabrt_in_training", "process aborted (SIGABRT)", "KILLED_BY_SIGNAL", "TRAINING",
         "SIGABRT sent to the child at its first training step", act=("signal", 6), config={"max_steps": 40}),
    case("address_space_limit", "allocation past an address-space limit", "HOST_OOM", "TRAINING",
         "RLIMIT_AS set to what the child holds plus 64 MiB at its first step, then a larger batch",
         act=("rlimit_as", 64 << 20), config={"max_steps": 40, "per_device_train_batch_size": 16,
                                              "max_seq_length": 512}, data="long.jsonl"),
    case("file_size_limit_on_save", "checkpoint write past a file-size limit", "DISK_FULL", "CHECKPOINT_SAVE",
         "RLIMIT_FSIZE of 64 KiB set on the child at its first step; the checkpoint save hits it (EFBIG)",
         act=("rlimit_fsize", 64 << 10), config={"max_steps": 4, "save_steps": 2}),
    case("stopped_in_training", "process stopped mid-training", "STUCK", "TRAINING",
         "SIGSTOP two seconds after the first step; the watchdog's training allowance is 4 s",
         act=("stop", 2.0), step_timeout=4.0, config={"max_steps": 200}),
    case("learning_rate_nan", "learning rate that overflows", "NAN_OR_DIVERGENCE", "TRAINING",
         "full fine-tuning at learning rate 1e6 with no clipping",
         config={"adapter": "full", "learning_rate": 1e6, "max_grad_norm": 0, "max_steps": 30}, fix="learning_rate"),
    case("learning_rate_climb", "loss that climbs without NaN", "NAN_OR_DIVERGENCE", "TRAINING",
         "full fine-tuning at learning rate 1 with no clipping: the loss climbs far above its start",
         config={"adapter": "full", "learning_rate": 1.0, "max_grad_norm": 0, "max_steps": 30,
                 "lr_scheduler": "constant", "warmup_ratio": 0}, fix="learning_rate"),
    # the second round
    later("unsupported_extension", "dataset file with an unsupported extension", "DATASET_FORMAT", "DATA_PREP",
          "the dataset is named .txt", data="chat.txt"),
    later("json_trailing_garbage", "JSON file with text after the document", "DATASET_FORMAT", "DATA_PREP",
          "a .json dataset whose array is followed by stray text", data="trailing.json"),
    later("parquet_cut_short", "Parquet file cut short", "DATASET_FORMAT", "DATA_PREP",
          "a real Parquet dataset cut to half its bytes", data="cut.parquet"),
    later("dpo_without_rejected", "preference rows without rejected", "DATASET_SCHEMA", "DATA_PREP",
          "DPO on rows with prompt and chosen but no rejected", data="chosen-only.jsonl", config={"method": "dpo"}),
    later("sharegpt_unknown_roles", "conversations with roles no template knows", "DATASET_SCHEMA", "DATA_PREP",
          "sharegpt rows whose turns come from 'robot' and 'alien'", data="odd-roles.jsonl",
          config={"dataset": {"format": "sharegpt"}}),
    later("template_unknown_filter", "chat template using a filter that does not exist", "CHAT_TEMPLATE_INCOMPATIBLE",
          "DATA_PREP", "the job's chat_template pipes content through a filter Jinja does not have",
          config={"chat_template": "{% for m in messages %}{{ m['content'] | shout }}{% endfor %}"},
          fix="chat_template"),
    later("model_without_tokenizer", "model folder without tokenizer files", "MODEL_NOT_FOUND", "MODEL_LOAD",
          "the model folder has config and weights but no tokenizer files", model="no-tokenizer"),
    later("resume_scheduler_damaged", "damaged scheduler state", "CHECKPOINT_CORRUPT", "STARTUP",
          "resume from a checkpoint whose scheduler.pt is garbage", resume="scheduler", config={"max_steps": 4}),
    later("resume_rng_damaged", "damaged RNG state", "CHECKPOINT_CORRUPT", "STARTUP",
          "resume from a checkpoint whose rng_state.pth is cut short", resume="rng", config={"max_steps": 4}),
    later("sigbus_in_training", "process killed by SIGBUS", "KILLED_BY_SIGNAL", "TRAINING",
          "SIGBUS sent to the child at its first training step", act=("signal", 7), config={"max_steps": 40}),
    later("sigquit_in_training", "process killed by SIGQUIT", "KILLED_BY_SIGNAL", "TRAINING",
          "SIGQUIT sent to the child at its first training step", act=("signal", 3), config={"max_steps": 40}),
    later("address_space_full_finetune", "full fine-tuning past an address-space limit", "HOST_OOM", "TRAINING",
          "RLIMIT_AS set to what the child holds plus 16 MiB at its first step of full fine-tuning at a large batch",
          act=("rlimit_as", 16 << 20), config={"adapter": "full", "max_steps": 40, "per_device_train_batch_size": 32,
                                               "max_seq_length": 512}, data="long.jsonl"),
    later("file_size_limit_full_model", "full model save past a file-size limit", "DISK_FULL", "CHECKPOINT_SAVE",
          "RLIMIT_FSIZE of 16 KiB at the first step of full fine-tuning; the checkpoint's weights hit it",
          act=("rlimit_fsize", 16 << 10), config={"adapter": "full", "max_steps": 4, "save_steps": 2}),
    later("stopped_full_finetune", "full fine-tuning stopped mid-training", "STUCK", "TRAINING",
          "SIGSTOP one second after the first step of full fine-tuning; the training allowance is 3 s",
          act=("stop", 1.0), step_timeout=3.0, config={"adapter": "full", "max_steps": 200}),
    later("prompt_completion_lr_1", "learning rate 1 on prompt/completion rows", "NAN_OR_DIVERGENCE", "TRAINING",
          "full fine-tuning of prompt/completion rows at learning rate 1, no clipping",
          config={"adapter": "full", "learning_rate": 1.0, "max_grad_norm": 0, "max_steps": 30,
                  "lr_scheduler": "constant", "warmup_ratio": 0}, data="prompt-completion.jsonl", fix="learning_rate"),
    later("adamw_8bit_on_cpu", "8-bit optimizer without a GPU", "QUANTIZATION_UNSUPPORTED", "STARTUP",
          "optimizer ADAMW_8BIT (bitsandbytes) on a CPU-only machine", config={"optimizer": "adamw_8bit"},
          fix="optimizer"),
    # the third round: causes whose fix is one config field, for the suggestions' benchmark too
    later("dpo_on_prompt_completion", "DPO on prompt/completion rows", "DATASET_SCHEMA", "DATA_PREP",
          "method DPO on rows with prompt and completion, no chosen or rejected", data="prompt-completion.jsonl",
          config={"method": "dpo"}, fix="method"),
    later("sharegpt_forced_on_messages", "sharegpt format forced on messages rows", "DATASET_SCHEMA", "DATA_PREP",
          "dataset.format SHAREGPT on rows that hold messages", config={"dataset": {"format": "sharegpt"}},
          fix="dataset.format"),
    later("alpaca_forced_on_chat", "alpaca format forced on messages rows", "DATASET_SCHEMA", "DATA_PREP",
          "dataset.format ALPACA on rows that hold messages", config={"dataset": {"format": "alpaca"}},
          fix="dataset.format"),
    later("preference_forced_on_chat", "preference format forced on messages rows", "DATASET_SCHEMA", "DATA_PREP",
          "dataset.format PREFERENCE on rows that hold messages", config={"dataset": {"format": "preference"}},
          fix="dataset.format"),
    later("eval_epoch_without_data", "evaluation each epoch with no eval data", "EVAL_CONFIG", "STARTUP",
          "eval_strategy EPOCH with no eval_uri and no eval_split",
          config={"eval_strategy": "epoch", "dataset": {"eval_split": 0}}, fix="eval_strategy"),
    later("lora_target_whole_model", "LoRA target naming the whole model", "LORA_TARGET_MODULES", "MODEL_LOAD",
          "lora.target_modules names the top-level 'model' module, not a layer",
          config={"adapter": "lora", "lora": {"target_modules": ["model"]}}, fix="lora.target_modules"),
    later("flash_attention_3_missing", "flash attention 3 without its package", "DEPENDENCY_MISSING", "MODEL_LOAD",
          "attn_implementation flash_attention_3 where flash_attn_3 is not installed",
          config={"attn_implementation": "flash_attention_3"}, fix="attn_implementation"),
    later("paged_adamw_on_cpu", "paged 8-bit optimizer without a GPU", "QUANTIZATION_UNSUPPORTED", "STARTUP",
          "optimizer PAGED_ADAMW_8BIT (bitsandbytes) on a CPU-only machine", config={"optimizer": "paged_adamw_8bit"},
          fix="optimizer"),
    # the fourth round: more ways data files, model folders and checkpoints are broken
    *[later(*row[:5], **row[5]) for row in FOURTH_ROUND],
    later("resume_adapter_config_damaged", "damaged adapter config in a checkpoint", "CHECKPOINT_CORRUPT", "STARTUP",
          "resume from a checkpoint whose adapter_config.json is not JSON", resume="adapter_config",
          config={"max_steps": 4}),
    later("resume_full_weights_damaged", "damaged full-model checkpoint weights", "CHECKPOINT_CORRUPT", "STARTUP",
          "resume full fine-tuning from a checkpoint whose model.safetensors is cut short", resume="full_weights",
          config={"adapter": "full", "max_steps": 4}),
    # the fifth round onwards (scripts/failure_rounds.py)
    *[fifth(*row, module=m) for m in ROUNDS for row in m.SHARED + m.TRAINER],
]
