"""Pre-flight: will this job run? The data (readable, the right format, its lengths against
max_seq_length), the chat template, the model's positions, and peak GPU memory against the target GPU.
Each check passes, warns or fails, with config changes that would make it pass."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from google.protobuf import json_format

from ftlab.v1 import analyzer_pb2, config_pb2, dataset_pb2
from services.analyzer import dataset_report, memory, modules, suggestions
from services.analyzer.budget import OverBudget, time_budget
from services.common import chat_templates, columns, model_folder
from services.common.access import Policy
from services.common.datasets import DatasetError, Scan, scan
from services.common.errors import FieldViolation, InvalidArgument

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

PASS, WARN, FAIL = analyzer_pb2.CHECK_STATUS_PASS, analyzer_pb2.CHECK_STATUS_WARN, analyzer_pb2.CHECK_STATUS_FAIL
C = config_pb2
GIB = memory.GIB


def _check(name: str, status: analyzer_pb2.CheckStatus.ValueType, message: str,
           patches: Iterable[analyzer_pb2.ConfigPatch] = ()) -> analyzer_pb2.PreflightCheck:
    return analyzer_pb2.PreflightCheck(name=name, status=status, message=message, suggestions=list(patches))


def _prompts_check(c: config_pb2.TrainingConfig, policy: Policy, owner: str | None) -> analyzer_pb2.PreflightCheck:
    """The file of sample prompts can be read, as the training child will read it."""
    from services.common.prompts import load_prompts

    uri = c.samples.prompts_uri
    try:
        chats = load_prompts({"prompts": list(c.samples.prompts),
                              "prompts_uri": str(policy.dataset(uri, "samples.prompts_uri", owner))})
    except (OSError, ValueError) as exc:  # not there, not text, or a row that is neither a chat nor a prompt
        why = "not found" if isinstance(exc, FileNotFoundError) else str(exc).removeprefix("samples.prompts_uri: ")
        return _check("samples", FAIL, f"{uri}: {why}", [suggestions.patch(
            "samples.prompts_uri", uri, "a readable file of prompts, or unset",
            "the sample prompts cannot be read; training does not need them", "")])
    return _check("samples", PASS, f"{len(chats)} sample prompt(s), answered at each evaluation and at the end")


def _format(c: config_pb2.TrainingConfig) -> str | None:
    name = config_pb2.DatasetFormat.Name(c.dataset.format).removeprefix("DATASET_FORMAT_").lower()
    return None if name in ("auto", "unspecified") else name


def preflight_request(request: analyzer_pb2.PreflightRequest, owner: str | None,
                      template_seconds: float | None = None) -> analyzer_pb2.PreflightResponse:
    """Pre-flight of a request as `owner` may read files (None: any upload, for an admin)."""
    config = config_pb2.TrainingConfig()
    try:
        json_format.Parse(request.config_json or "{}", config)
    except (json_format.ParseError, RecursionError) as exc:
        raise InvalidArgument("config_json is not a TrainingConfig",
                              violations=[FieldViolation("config_json", str(exc)[:300])]) from None
    policy = Policy.current()
    policy.config(config, owner, prefix="config_json.")
    return preflight(config, request.hardware, policy, owner, template_seconds)


def preflight(c: config_pb2.TrainingConfig, hardware: analyzer_pb2.Hardware, policy: Policy,
              owner: str | None = None, template_seconds: float | None = None) -> analyzer_pb2.PreflightResponse:
    out = analyzer_pb2.PreflightResponse()
    shape = memory.load_shape(c.base_model)
    tokenizer = dataset_report.load_tokenizer(c.base_model, c.chat_template)
    local = Path(c.base_model).is_absolute()
    gone = model_folder.missing_config(c.base_model) if local else None
    instead = model_folder.not_a_folder(c.base_model) if local else None

    def model_folder_patch(reason: str) -> analyzer_pb2.ConfigPatch:
        return suggestions.patch("base_model", c.base_model, "the folder that holds the model's config.json and "
                                 "weights", reason, "")

    if instead is not None:
        out.checks.append(_check("model", FAIL, f"{c.base_model} is a file, not a model folder{instead}",
                                 [model_folder_patch("a model is a folder, not a file")]))
    elif gone is not None:
        out.checks.append(_check("model", FAIL, f"{c.base_model}: the folder has no config.json{gone}, so it holds no "
                                 "model transformers can load", [model_folder_patch("the folder has no config.json")]))
    elif local and (misfit := model_folder.heads_misfit(c.base_model)):
        out.checks.append(_check("model", FAIL, f"{c.base_model}: the model's config.json: {misfit}, so its attention "
                                 "layers cannot take its weights", [suggestions.heads_misfit(c, misfit)]))
    else:
        out.checks.append(_check("model", PASS if shape else WARN,
                                 f"{c.base_model}: {shape.params:,} parameters, {shape.layers} layers"
                                 if shape else f"{c.base_model}: its config.json is not readable here (not a local "
                                 "folder nor in the Hugging Face cache); no memory estimate"))
    lora = modules.lora_check(c)
    if lora is not None:
        out.checks.append(lora)
    decay = suggestions.weight_decay(c, c.learning_rate, at_least=1.0)  # the weights would flip sign at each step
    if decay is not None:
        out.checks.append(_check("weight_decay", FAIL, decay.reason, [decay]))
    _dataset_checks(out, c, policy, owner, tokenizer, shape, template_seconds)
    if c.samples.prompts_uri:
        out.checks.append(_prompts_check(c, policy, owner))
    _memory_checks(out, c, hardware, shape)
    out.ok = all(check.status != FAIL for check in out.checks)
    return out


def _dataset_checks(out: analyzer_pb2.PreflightResponse, c: config_pb2.TrainingConfig, policy: Policy,
                    owner: str | None, tokenizer: PreTrainedTokenizerBase | None, shape: memory.Shape | None,
                    template_seconds: float | None) -> None:
    for field, uri in (("dataset.uri", c.dataset.uri), ("dataset.eval_uri", c.dataset.eval_uri)):
        if not uri:
            continue
        name = "dataset" if field == "dataset.uri" else "eval_dataset"
        try:
            found, key = _scan(policy.dataset(uri, field, owner), _format(c), dict(c.dataset.columns))
        except IsADirectoryError:
            out.checks.append(_check(name, FAIL, f"{uri}: a folder, not a dataset file"))
            continue
        except FileNotFoundError:
            out.checks.append(_check(name, FAIL, f"{uri}: not found (relative paths are under the server's datasets "
                                     "folder)", [suggestions.patch(field, uri, "a file that exists on the server",
                                                                    "the dataset file was not found", "")]))
            continue
        except (DatasetError, UnicodeDecodeError, ValueError) as exc:
            found_columns = columns.from_message(str(exc))
            cause = "columns_absent" if str(exc).startswith("dataset.columns maps") else ""
            out.checks.append(_check(name, FAIL, f"{uri}: {exc}", suggestions.suggest(
                "DATASET_SCHEMA", "", c, False, facts={"columns": found_columns, "cause": cause})
                if found_columns else []))
            continue
        lengths = None
        if tokenizer is not None and found.rows:
            lengths, problem = _render_cached(key, found.rows, tokenizer, template_seconds)
            if problem:
                out.checks.append(_check("chat_template", FAIL, problem, [suggestions.patch(
                    "chat_template", "(the job's)", "chatml", problem + "; chatml names the built-in ChatML "
                    "template", "pre-flight and training can apply the template")] if c.chat_template else []))
                continue
        report = dataset_report.report(uri, found, lengths, c.max_seq_length)
        if name == "dataset":
            out.dataset.CopyFrom(report)
        if found.bad:
            lines = ", ".join(str(n) for n, _ in found.bad[:10])
            out.checks.append(_check(name, FAIL, f"{uri}: {len(found.bad)} bad row(s) of {len(found.rows) + len(found.bad)}"
                                     f" (lines {lines}); first: line {found.bad[0][0]}: {found.bad[0][1]}"))
            continue
        dpo = c.method == C.METHOD_DPO
        if dpo != (found.format == "preference"):
            need = "chosen/rejected pairs" if dpo else "messages, conversations, instruction/output or prompt/completion"
            out.checks.append(_check(name, FAIL, f"{uri}: format {found.format} does not fit method "
                                     f"{config_pb2.Method.Name(c.method)}, which needs {need}",
                                     suggestions.suggest("DATASET_SCHEMA", "", c, False, facts={"cause": "method"})))
            continue
        out.checks.append(_check(name, PASS, f"{uri}: {found.format}, {len(found.rows)} rows"))
        if name == "dataset" and c.dataset.eval_split and not c.dataset.eval_uri:
            _split_check(out, c, len(found.rows))
        if name == "dataset" and lengths is not None:
            if lengths.template_missing:
                out.checks.append(_check("chat_template", FAIL, "the tokenizer has no chat template and the data is "
                                         "conversational", suggestions.suggest("CHAT_TEMPLATE_MISSING", "", c, False)))
            _length_check(out, c, report, shape)


def _split_check(out: analyzer_pb2.PreflightResponse, c: config_pb2.TrainingConfig, rows: int) -> None:
    """The evaluation split as the trainer makes it (datasets' train_test_split: ceil(rows x split) held
    out) must leave rows to train on."""
    held_out = math.ceil(rows * c.dataset.eval_split)
    if rows - held_out < 1:
        out.checks.append(_check("eval_split", FAIL, f"dataset.eval_split {c.dataset.eval_split:g} holds out {held_out} "
                                 f"of {rows} rows and leaves none to train on", [suggestions.eval_split(c)]))


# What the last checks found, for the next check of the same data (a sweep submits one dataset many
# times): scans by file (its size and modification time), lengths by scan, tokenizer and template.
ScanKey: TypeAlias = tuple[str, int, int, str | None, tuple[tuple[str, str], ...]]  # path, mtime, size, format, columns
Rendered: TypeAlias = tuple[dataset_report.Lengths | None, str]  # (lengths, "") or (None, the template's problem)
_SCANS: dict[ScanKey, Scan] = {}
_LENGTHS: dict[tuple[ScanKey, object, str | None], Rendered] = {}  # by scan, tokenizer and template
CACHED = 8
CACHED_FILE_BYTES = 64 << 20
K = TypeVar("K")
V = TypeVar("V")


def _remember(table: dict[K, V], key: K, value: V) -> None:
    while len(table) >= CACHED:
        table.pop(next(iter(table)))
    table[key] = value


def _scan(path: Path, fmt: str | None, columns: dict[str, str]) -> tuple[Scan, ScanKey | None]:
    """(the file's Scan, a key for it, or None when it is not kept)."""
    st = path.stat()
    key: ScanKey = (str(path), st.st_mtime_ns, st.st_size, fmt, tuple(sorted(columns.items())))
    if key in _SCANS:
        return _SCANS[key], key
    found = scan(path, fmt, columns)
    if st.st_size > CACHED_FILE_BYTES:
        return found, None
    _remember(_SCANS, key, found)
    return found, key


def _render_cached(scan_key: ScanKey | None, rows: list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase,
                   seconds: float | None) -> Rendered:
    if scan_key is None:
        return _render(rows, tokenizer, seconds)
    key = (scan_key, getattr(tokenizer, "ftlab_cache_key", None), tokenizer.chat_template)
    if key not in _LENGTHS:
        lengths, problem = _render(rows, tokenizer, seconds)
        if problem and "was stopped" in problem:  # over budget: perhaps only a busy machine; try again next time
            return lengths, problem
        _remember(_LENGTHS, key, (lengths, problem))
    return _LENGTHS[key]


def _render(rows: list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, seconds: float | None) -> Rendered:
    """(token lengths, "") or (None, what is wrong with the chat template): it must compile, render
    each conversation without raising, and render them all within the time budget."""
    import jinja2

    try:
        with time_budget(seconds):
            lengths = dataset_report.token_lengths(rows, tokenizer)
        if lengths.lengths and not lengths.template_missing and not any(lengths.lengths):
            return None, "the chat template renders every conversation as empty text: it writes none of their turns"
        same = None if lengths.template_missing else dataset_report.same_text(rows, tokenizer)
        if same is not None:
            return None, (f"the chat template renders every conversation as the same text ({same[:60]!r}): it writes "
                          f"none of their turns{chat_templates.unknown_name_hint(tokenizer.chat_template)}")
        return lengths, ""
    except OverBudget:
        return None, (f"rendering the chat template over {min(len(rows), dataset_report.MAX_MEASURED)} rows took "
                      f"over {seconds:g}s and was stopped; the template may loop without end")
    except jinja2.TemplateSyntaxError as exc:
        return None, f"the chat template does not compile: {exc.message} (line {exc.lineno})"[:500]
    except (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        return None, f"the chat template fails on this data: {type(exc).__name__}: {str(exc)[:300]}"
    except MemoryError:
        return None, "rendering the chat template needed more memory than pre-flight allows; it may build " \
                     "text without bound"


def _length_check(out: analyzer_pb2.PreflightResponse, c: config_pb2.TrainingConfig,
                  report: dataset_pb2.DatasetReport, shape: memory.Shape | None) -> None:
    limit = c.max_seq_length
    if shape and shape.max_positions and limit > shape.max_positions:
        status = FAIL if shape.learned_positions else WARN
        out.checks.append(_check("sequence_length", status, f"max_seq_length {limit} exceeds the model's "
                                 f"{shape.max_positions} positions", [suggestions.patch(
                                     "max_seq_length", limit, shape.max_positions, "the model has no positions beyond",
                                     "longer examples are truncated to what the model supports")]))
        return
    if report.share_truncated > 0:
        wanted = 1 << (max(report.p95_tokens, 1) - 1).bit_length()
        if shape and shape.max_positions:
            wanted = min(wanted, shape.max_positions)
        patches = [suggestions.patch("max_seq_length", limit, wanted, f"95% of rows fit in {report.p95_tokens} tokens",
                                      "fewer rows cut; more memory per batch")] if wanted > limit else []
        out.checks.append(_check("sequence_length", WARN, f"{report.share_truncated:.0%} of rows are longer than "
                                 f"max_seq_length {limit} and will be cut (longest {report.max_tokens}, p95 "
                                 f"{report.p95_tokens})", patches))
    else:
        out.checks.append(_check("sequence_length", PASS, f"every row fits in max_seq_length {limit} "
                                 f"(longest {report.max_tokens} tokens)"))


def _memory_checks(out: analyzer_pb2.PreflightResponse, c: config_pb2.TrainingConfig, hardware: analyzer_pb2.Hardware,
                   shape: memory.Shape | None) -> None:
    workers_known = hardware.host_memory_bytes > 0 or hardware.gpu_count > 0
    if c.adapter == C.ADAPTER_QLORA and workers_known and hardware.gpu_count == 0:
        out.checks.append(_check("gpu_required", FAIL, "QLoRA quantizes with bitsandbytes on a GPU and no registered "
                                 "trainer has one", suggestions.suggest("GPU_UNAVAILABLE", "", c, False)))
    if shape is None:
        return
    estimate = memory.estimate(shape, c, hardware.gpu_memory_bytes, hardware.gpu_name)
    out.memory.CopyFrom(estimate)
    out.estimated_gpu_memory_bytes = estimate.total_bytes
    need = estimate.total_bytes + memory.CUDA_CONTEXT_BYTES
    said = f"estimated peak {estimate.total_bytes / GIB:.1f} GiB"
    if not hardware.gpu_memory_bytes:
        out.checks.append(_check("gpu_memory", WARN if not workers_known else PASS,
                                 f"{said}; no registered trainer has a GPU to compare with" if workers_known else
                                 f"{said}; no trainer is registered yet to compare with"))
        return
    gpu = f"{hardware.gpu_name or 'the GPU'} ({hardware.gpu_memory_bytes / GIB:.0f} GiB)"
    if need > hardware.gpu_memory_bytes:
        out.checks.append(_check("gpu_memory", FAIL, f"{said}, more than {gpu} holds",
                                 suggestions.suggest("CUDA_OOM", "TRAINING", c, True)))
    elif need > 0.9 * hardware.gpu_memory_bytes:
        out.checks.append(_check("gpu_memory", WARN, f"{said}: close to all of {gpu}"))
    else:
        out.checks.append(_check("gpu_memory", PASS, f"{said}, fits in {gpu}"))
