"""The analyzer on real logs of real failed runs (tests/fixtures/failures, each with how it was
produced and the expected category and phase), and its config-aware suggestions."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from google.protobuf import json_format

from ftlab.config import config_from_dict
from ftlab.v1 import analyzer_pb2, events_pb2
from services.analyzer.analyze import analyze

FIXTURES = sorted(p for p in (Path(__file__).parents[1] / "fixtures" / "failures").iterdir() if p.is_dir())
CORPUS = Path(__file__).parents[1] / "fixtures" / "corpus"
DEV = sorted(p for p in (CORPUS / "dev").iterdir() if p.is_dir())


def request_for(case: Path, config: dict | None = None) -> analyzer_pb2.AnalyzeFailureRequest:
    meta = json.loads((case / "meta.json").read_text())
    request = analyzer_pb2.AnalyzeFailureRequest(log=(case / "log.txt").read_text(errors="replace"))
    if meta.get("exit_code") is not None:
        request.exit_code = meta["exit_code"]
    if config is not None:
        request.config_json = json_format.MessageToJson(config_from_dict(config))
    return request


def category(a) -> str:
    return analyzer_pb2.FailureCategory.Name(a.category).removeprefix("FAILURE_CATEGORY_")


def phase(a) -> str:
    return events_pb2.Phase.Name(a.phase).removeprefix("PHASE_")


@pytest.mark.parametrize("case", FIXTURES, ids=[p.name for p in FIXTURES])
def test_real_failure_logs_are_classified(case):
    meta = json.loads((case / "meta.json").read_text())
    a = analyze(request_for(case))
    assert (category(a), phase(a)) == (meta["expected_category"], meta["expected_phase"])
    assert a.summary and a.evidence and 0 < a.confidence <= 1


# What no rule can honestly get from the log: the analyzer gives what the log shows, and this marks it.
NO_EVIDENCE = {
    # transformers builds an empty tokenizer from a folder without tokenizer files, silently; a bare
    # script then fails on the chat template, and nothing in the log names the missing files
    "bare-model_without_tokenizer": "the log holds no trace of the missing tokenizer files",
    # transformers says "Can't find a valid checkpoint" for a missing folder and for a folder without
    # weights alike; FineTune Lab's trainer says which (its run of the same cause is scored right)
    "bare-resume_adapter_weights_missing": "the library's one message for a missing and an incomplete checkpoint",
    # datasets reads the file without a word, and TRL then looks for a text column: the log shows only
    # a missing column, not the row whose type changed
    "bare-column_type_changes": "the log holds only TRL's KeyError for a text column",
    "bare-chat_template_renders_nothing": "the log holds only TRL dropping fully masked examples and "
                                          "num_samples=0, which truncation cutting every completion away gives too",
    # datasets' json builder raises a bare StopIteration for an empty file and a pattern matching no file
    # alike; the analysis names both
    "bare-dataset_pattern_matches_nothing": "datasets' one StopIteration for an empty file and a pattern that "
                                            "matches no file",
    # transformers says "Unrecognized model ... Should have a `model_type` key" for a config.json that is a
    # link to a deleted file and for one without model_type alike; FineTune Lab's trainer says which
    "bare-config_dangling_link": "transformers' one message for a missing config.json and one without model_type",
    "bare-csv_messages_plain_text": "the log holds only the Trainer's 'No columns in the dataset match', which "
                                    "rows without the column give too",
    # transformers builds layers of the shapes a config's head counts give, then says only that the weights
    # do not fit them ("ignore_mismatched_sizes"), as for weights of another model; FineTune Lab's trainer
    # checks the head counts first and says which
    "bare-heads_not_dividing_hidden": "transformers' one message for weights that do not fit a config and a "
                                      "config whose head counts do not fit its weights",
    # FineTune Lab's reader has no plain-text format: it refuses a `text` column by its name before it
    # reads a value, so its log shows a column no format names, not that the values are numbers
    "cpu-text_as_number": "the trainer's reader refuses the text column by its name before it reads a value",
    # the Trainer says "No columns in the dataset match" for rows never tokenized, whatever kept them from it
    # (here TRL told to skip preparing them); the log does not say the setting
    "bare-dataset_said_prepared": "the Trainer's one message for rows that were never tokenized",
}


@pytest.mark.parametrize("case", [pytest.param(p, marks=pytest.mark.xfail(reason=NO_EVIDENCE[p.name], strict=True))
                                  if p.name in NO_EVIDENCE else p for p in DEV], ids=[p.name for p in DEV])
def test_the_development_corpus_as_the_scheduler_sends_it(case):
    """Jobs that failed through the trainer, analyzed with what the scheduler passes: the error's type
    and phase, the exit status, the config (the test half is scored by bench/analyzer_accuracy.py)."""
    from services.analyzer.cases import names, request_for

    meta = json.loads((case / "meta.json").read_text())
    a = analyze(request_for(case))
    assert names(a) == (meta["expected_category"], meta["expected_phase"])
    assert a.summary and a.evidence


def test_the_halves_share_no_cause():
    halves = {half: {json.loads((p / "meta.json").read_text())["cause"] for p in (CORPUS / half).iterdir()}
              for half in ("dev", "test")}
    assert halves["dev"] and halves["test"] and not halves["dev"] & halves["test"]
    import sys

    sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
    from failure_corpus import split_for

    for half, causes in halves.items():  # the split is decided by the causes alone, before any run
        assert all(split_for(c) == half for c in causes)


def test_share_classified_right_is_reported(capsys):
    right_category, right_phase, by_category = 0, 0, Counter()
    for case in FIXTURES:
        meta = json.loads((case / "meta.json").read_text())
        a = analyze(request_for(case))
        right_category += category(a) == meta["expected_category"]
        right_phase += phase(a) == meta["expected_phase"]
        by_category[meta["expected_category"]] += 1
    print(f"\nanalyzer: {right_category}/{len(FIXTURES)} categories and {right_phase}/{len(FIXTURES)} phases right "
          f"over {len(by_category)} categories")
    assert right_category == right_phase == len(FIXTURES)


def case(name: str) -> Path:
    return next(p for p in FIXTURES if p.name == name)


def suggestions(a) -> dict[str, tuple[str, str]]:
    return {s.field: (s.current, s.suggested) for s in a.suggestions}


def test_oom_in_training_keeps_the_effective_batch():
    a = analyze(request_for(case("h100-cuda_oom_train"), {"per_device_train_batch_size": 8,
                                                          "gradient_accumulation_steps": 2, "adapter": "lora",
                                                          "auto_micro_batch": "SWITCH_AUTO"}))
    s = suggestions(a)
    assert s["per_device_train_batch_size"] == ("8", "4")
    assert s["gradient_accumulation_steps"] == ("2", "4")
    assert s["gradient_checkpointing"] == ("false", "true")
    assert s["adapter"] == ("ADAPTER_LORA", "ADAPTER_QLORA")
    # the micro-batch search could pick the larger micro-batch again: the retry turns it off
    assert s["auto_micro_batch"] == ("SWITCH_AUTO", "SWITCH_OFF")
    explicit = analyze(request_for(case("h100-cuda_oom_train"), {"per_device_train_batch_size": 8,
                                                                 "auto_micro_batch": "SWITCH_OFF"}))
    assert "auto_micro_batch" not in suggestions(explicit)


def test_oom_suggestions_follow_the_config():
    a = analyze(request_for(case("h100-cuda_oom_train"), {"per_device_train_batch_size": 1, "max_seq_length": 4096,
                                                          "gradient_checkpointing": True, "adapter": "full"}))
    s = suggestions(a)
    assert "per_device_train_batch_size" not in s and "gradient_checkpointing" not in s
    assert s["max_seq_length"] == ("4096", "2048")
    assert s["adapter"] == ("ADAPTER_FULL", "ADAPTER_LORA")


def test_oom_in_evaluation_changes_evaluation_only():
    request = request_for(case("h100-cuda_oom_train"), {"per_device_eval_batch_size": 8,
                                                        "per_device_train_batch_size": 8})
    request.phase = events_pb2.PHASE_EVALUATION  # as the trainer records it
    s = suggestions(analyze(request))
    assert s == {"per_device_eval_batch_size": ("8", "2"), "eval_accumulation_steps": ("unset", "4")}


def test_divergence_lowers_the_learning_rate():
    s = suggestions(analyze(request_for(case("h100-fp16_nan_divergence"),
                                        {"learning_rate": 5.0, "max_grad_norm": 0, "precision": "fp16"})))
    assert s["learning_rate"] == ("5", "0.5")
    assert s["max_grad_norm"] == ("0", "1.0")
    assert s["precision"] == ("PRECISION_FP16", "PRECISION_BF16")
    assert "weight_decay" not in s  # 5 x 0: no decay to blame
    from services.analyzer.cases import request_for as as_the_scheduler_sends_it

    decayed = analyze(as_the_scheduler_sends_it(CORPUS / "dev" / "cpu-weight_decay_blows_up"))
    assert [p.field for p in decayed.suggestions][:2] == ["weight_decay", "learning_rate"]
    assert "multiplies every weight by -9" in decayed.suggestions[0].reason


def test_harmless_noise_is_not_an_error():
    log = "Failed to load CPU gemm_4bit_forward from kernels-community\nError reporting is on\nDone.\n"
    assert category(analyze(analyzer_pb2.AnalyzeFailureRequest(log=log, exit_code=1))) == "UNKNOWN"


def test_an_exception_without_a_message_is_read_after_its_frames():
    from services.analyzer.logparse import parse

    frames = '  File "/x/site-packages/datasets/builder.py", line 1, in _split_generators\n    next(iter(t))\n'
    for name in ("StopIteration", "MemoryError", "torch.OutOfMemoryError"):
        log = parse(f"Loading\nTraceback (most recent call last):\n{frames}{name}\nafter\n")
        assert (log.exception_type, log.message) == (name, "")
    assert parse("Killed\n").exception_type == ""  # a word alone, with no frames before it, is not an exception
    empty = analyze(analyzer_pb2.AnalyzeFailureRequest(
        log=f"Traceback (most recent call last):\n{frames}StopIteration\n", exit_code=1))
    assert category(empty) == "DATASET_FORMAT" and "matches no file" in empty.summary


def test_a_missing_sample_prompts_file_is_said_as_that_file_even_under_the_datasets_folder():
    log = ('Traceback (most recent call last):\n  File "/x/services/common/prompts.py", line 21, in load_prompts\n'
           "FileNotFoundError: [Errno 2] No such file or directory: '/home/u/.ftlab/datasets/prompts.jsonl'\n")
    a = analyze(analyzer_pb2.AnalyzeFailureRequest(log=log, exit_code=1, config_json=json.dumps(
        {"samples": {"promptsUri": "prompts.jsonl"}})))
    assert category(a) == "DATASET_NOT_FOUND" and [(s.field, s.suggested) for s in a.suggestions] == [
        ("samples.prompts_uri", "")]


def test_a_folder_without_a_tokenizer_file_is_said_as_the_model_folder():
    a = analyze(request_for(CORPUS / "dev" / "bare-training_output_as_base_model"))
    assert (category(a), phase(a)) == ("MODEL_NOT_FOUND", "MODEL_LOAD")
    (patch,) = a.suggestions
    assert patch.field == "base_model" and "no tokenizer it can read" in patch.reason
    assert "tokenizer.json" in patch.reason and "sentencepiece" in patch.reason  # both ways in: a file, a package


def test_turns_joined_to_text_in_one_row_are_said_as_the_rows_shape():
    a = analyze(request_for(CORPUS / "dev" / "bare-prompt_text_completion_turns"))
    assert (category(a), phase(a)) == ("DATASET_SCHEMA", "DATA_PREP")
    (patch,) = a.suggestions
    assert patch.field == "dataset.uri" and "all text or all turns" in patch.suggested


def test_the_base_models_own_damaged_files_are_said_as_the_base_models_a_checkpoints_as_the_checkpoints():
    for name in ("cpu-weights_truncated", "cpu-weights_of_another_size", "bare-weights_of_another_size"):
        a = analyze(request_for(CORPUS / "dev" / name))
        assert (category(a), phase(a)) == ("CHECKPOINT_CORRUPT", "MODEL_LOAD"), name
        assert [s.field for s in a.suggestions] == ["base_model"], name
        assert "base model's own files" in a.suggestions[0].reason
        assert a.summary.startswith("The base model's own files are damaged or do not fit its config during model load")
    resumed = analyze(request_for(case("cpu-11_resume_corrupt_adapter")))
    assert (category(resumed), phase(resumed)) == ("CHECKPOINT_CORRUPT", "MODEL_LOAD")
    assert [s.field for s in resumed.suggestions] == ["checkpoint"]
    assert resumed.summary.startswith("The checkpoint to load is damaged")
    # a plain script's resume prints no path: the Trainer's resume functions in the traceback say it
    frames = ('Traceback (most recent call last):\n  File "/v/site-packages/transformers/trainer.py", line 1, in train\n'
              '    x\n  File "/v/site-packages/transformers/trainer.py", line 2, in _load_from_checkpoint\n    x\n'
              '  File "/v/site-packages/safetensors/torch.py", line 3, in load_file\n    x\n'
              "safetensors_rust.SafetensorError: Error while deserializing header: invalid JSON in header\n")
    quiet = analyze(analyzer_pb2.AnalyzeFailureRequest(log=frames, exit_code=1, phase=events_pb2.PHASE_MODEL_LOAD))
    assert category(quiet) == "CHECKPOINT_CORRUPT" and [s.field for s in quiet.suggestions] == ["checkpoint"]
    # a base model that is itself a training output's checkpoint folder is the base model
    base = "/models/run1/checkpoint-500"
    log = (f"loading {base}\nTraceback (most recent call last):\n  File \"/v/site-packages/transformers/modeling_utils.py\","
           f" line 1, in from_pretrained\n    x\nsafetensors_rust.SafetensorError: Error while deserializing header: "
           f"incomplete metadata, file not fully covered\n")
    own = analyze(analyzer_pb2.AnalyzeFailureRequest(log=log, exit_code=1, phase=events_pb2.PHASE_MODEL_LOAD,
                                                     config_json=json.dumps({"baseModel": base})))
    assert category(own) == "CHECKPOINT_CORRUPT" and [s.field for s in own.suggestions] == ["base_model"]


def test_the_trainers_own_records_decide_stuck_and_signals():
    stuck = analyze(analyzer_pb2.AnalyzeFailureRequest(log="step 10", error_type="Stuck", signal=9,
                                                       phase=events_pb2.PHASE_TRAINING))
    assert (category(stuck), phase(stuck)) == ("STUCK", "TRAINING")
    killed = analyze(analyzer_pb2.AnalyzeFailureRequest(log="starting training", error_type="Signal", signal=15))
    assert category(killed) == "KILLED_BY_SIGNAL"


def with_own_config(name: str, gpu: bool = False) -> analyzer_pb2.AnalyzeFailureRequest:
    """The request the scheduler makes for one of our own captured runs: its resolved config too."""
    meta = json.loads((case(name) / "meta.json").read_text())
    request = request_for(case(name))
    request.config_json = json.dumps(meta["config"])
    request.hardware.gpu_count = int(gpu)
    return request


def test_every_category_has_a_real_log():
    expected = {json.loads((c / "meta.json").read_text())["expected_category"] for c in FIXTURES}
    taxonomy = {n.removeprefix("FAILURE_CATEGORY_") for n in analyzer_pb2.FailureCategory.keys()}
    assert taxonomy - expected == {"UNSPECIFIED"}


@pytest.mark.parametrize("name", [c.name for c in FIXTURES if (json.loads((c / "meta.json").read_text())
                                                                .get("error_event"))])
def test_with_the_trainers_error_event_as_in_production(name):
    """The scheduler passes the error type, phase and exit status the trainer recorded besides the log."""
    meta = json.loads((case(name) / "meta.json").read_text())
    event = meta["error_event"]
    request = with_own_config(name)
    request.error_type = event["type"]
    request.phase = events_pb2.Phase.Value(event["phase"])
    if meta.get("signal"):
        request.signal = meta["signal"]
    a = analyze(request)
    assert (category(a), phase(a)) == (meta["expected_category"], meta["expected_phase"])


def test_real_oom_in_evaluation_shrinks_evaluation_only():
    s = suggestions(analyze(with_own_config("h100-cuda_oom_eval", gpu=True)))
    assert s == {"per_device_eval_batch_size": ("256", "64"), "eval_accumulation_steps": ("unset", "4")}


def test_real_oom_in_full_training_keeps_the_effective_batch_then_lora():
    s = suggestions(analyze(with_own_config("h100-cuda_oom_train_full", gpu=True)))
    assert s["per_device_train_batch_size"] == ("64", "32") and s["gradient_accumulation_steps"] == ("4", "8")
    assert s["adapter"] == ("ADAPTER_FULL", "ADAPTER_LORA")


def test_past_the_position_table_cuts_to_the_models_positions():
    s = suggestions(analyze(with_own_config("cpu-ftlab-gpt2_learned_positions")))
    assert s == {"max_seq_length": ("256", "64")}  # the model has 64 positions, as the trainer logged


def test_every_example_cut_away_lengthens_max_seq_length():
    s = suggestions(analyze(with_own_config("cpu-ftlab-dpo_prompt_longer_than_max_length")))
    assert s == {"max_seq_length": ("128", "256")}


def test_qlora_without_a_gpu_falls_back_to_lora():
    s = suggestions(analyze(with_own_config("cpu-ftlab-qlora_on_cpu")))
    assert s["adapter"] == ("ADAPTER_QLORA", "ADAPTER_LORA")


def test_stuck_without_loader_workers_suggests_no_loader_change():
    a = analyze(with_own_config("cpu-ftlab-stuck_sigstop"))
    assert category(a) == "STUCK" and "dataloader_num_workers" not in suggestions(a)
    assert any("ftlab watchdog" in e for e in a.evidence)


def test_an_unrecognised_failure_says_so_and_still_names_its_phase():
    """A real failure outside the taxonomy (an unreadable tokenizer.json): UNKNOWN with low confidence,
    never a guess at a neighbouring category, and no config changes invented for it."""
    a = analyze(with_own_config("cpu-ftlab-tokenizer_unreadable"))
    assert (category(a), phase(a)) == ("UNKNOWN", "MODEL_LOAD")
    assert a.confidence < 0.5
    assert list(a.suggestions) == []
    assert any("untagged enum" in line for line in a.evidence)
    # what is known still: the root exception, its message and where it was raised
    assert "Exception raised in transformers/tokenization_utils_tokenizers.py" in a.summary, a.summary
    assert "untagged enum" in a.summary and any("left open" in line for line in a.evidence)


@pytest.mark.parametrize("path", ["/home/me/proj/.venv/lib/python3.11/site-packages/jinja2/environment.py",
                                  "/usr/lib/python3/dist-packages/jinja2/environment.py",
                                  "<site-packages>/jinja2/environment.py"])
def test_the_library_is_found_in_a_virtual_environments_path(path):
    """A venv's path holds lib/python3.X before site-packages: the library is what follows the last."""
    from services.analyzer import priors
    from services.analyzer.logparse import Frame

    frames = [Frame("/srv/app/services/trainer/child.py", "main", ""), Frame(path, "handle_exception", "")]
    assert priors.innermost_library_frame(frames)[0] == "jinja2/environment.py"
    assert priors.prior(frames)[0] == "CHAT_TEMPLATE_INCOMPATIBLE"


def test_suggestions_name_the_field_at_fault_with_a_value_a_retry_can_apply():
    from services.analyzer.suggestions import suggest
    from services.scheduler import resume_changes as retry

    def first(category, config, cause=""):
        found = suggest(category, "DATA_PREP", config_from_dict(config), False, facts={"cause": cause})
        return [(p.field, p.suggested) for p in found]

    assert first("DATASET_SCHEMA", {"method": "dpo"}, cause="method") == [("method", "METHOD_SFT")]
    assert first("DATASET_SCHEMA", {"method": "sft"}, cause="method") == [("method", "METHOD_DPO")]
    assert first("DATASET_SCHEMA", {"dataset": {"format": "sharegpt"}}) == [("dataset.format", "DATASET_FORMAT_AUTO")]
    assert first("DATASET_SCHEMA", {"dataset": {"format": "auto"}})[0][0] == "dataset.format"  # advice: fix the rows
    assert first("CHAT_TEMPLATE_MISSING", {}) == [("chat_template", "chatml")]
    assert first("CHAT_TEMPLATE_INCOMPATIBLE", {"chat_template": "{{ oops"}) == [("chat_template", "chatml")]
    assert first("CHAT_TEMPLATE_INCOMPATIBLE", {"chat_template": "chatml", "assistant_only_loss": True}) == [
        ("assistant_only_loss", "false")]
    assert first("DEPENDENCY_MISSING", {"attn_implementation": "flash_attention_3"}) == [("attn_implementation", "sdpa")]
    assert first("DEPENDENCY_MISSING", {}) == []
    assert first("DATASET_FORMAT", {"samples": {"prompts_uri": "p.jsonl"}}, cause="prompts") == [
        ("samples.prompts_uri", "")]
    split = suggest("INVALID_CONFIG", "DATA_PREP", config_from_dict({"dataset": {"eval_split": 0.99}}), False,
                    facts={"message": "With n_samples=64, test_size=0.99 and train_size=None, the resulting train set "
                                      "will be empty."})
    assert [(p.field, p.current, p.suggested) for p in split] == [("dataset.eval_split", "0.99", "0.1")]
    assert suggest("INVALID_CONFIG", "STARTUP", config_from_dict({}), False, facts={"message": "eval_steps 0"}) == []

    analysis = analyzer_pb2.FailureAnalysis(suggestions=[
        analyzer_pb2.ConfigPatch(field="chat_template", suggested="chatml"),
        analyzer_pb2.ConfigPatch(field="base_model", suggested="a local path or a hub id")])
    applied, skipped = retry.apply_suggestions(config_from_dict({"chat_template": "{{ oops"}), analysis)
    assert applied.chat_template == "chatml" and skipped == ["base_model: a local path or a hub id"]


def test_a_named_chat_template_is_the_built_in_one():
    from services.common import chat_templates

    assert chat_templates.resolve("chatml") == chat_templates.resolve(" ChatML ") == chat_templates.CHATML
    assert "{% generation %}" in chat_templates.CHATML
    assert chat_templates.resolve("{{ messages }}") == "{{ messages }}" and chat_templates.resolve("") == ""


def test_a_model_quantized_by_a_method_whose_package_is_missing_names_the_package_and_the_base_model():
    """A GPTQ model on a trainer without optimum: not a setting of the adapter (QLoRA is bitsandbytes'), but
    the package to install or the unquantized model to train on."""
    a = analyze(request_for(CORPUS / "dev" / "bare-gptq_without_its_package",
                            {"base_model": "org/model-GPTQ", "adapter": "lora"}))
    assert (category(a), phase(a)) == ("QUANTIZATION_UNSUPPORTED", "MODEL_LOAD")
    [s] = a.suggestions
    assert (s.field, s.current, s.suggested) == ("base_model", "org/model-GPTQ", "an unquantized copy of this model")
    assert "needs optimum" in s.reason
