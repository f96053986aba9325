"""Failure rules: which category a failed run belongs to, decided from the traceback's exception
and frames, the exit status, and the logged metrics. Ordered: the first rule that matches wins.

Rules look at the exception and the frames, never at "Error" anywhere in the log: logs are full of
harmless lines such as bitsandbytes' "Failed to load ... from kernels-community".
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.analyzer import library, priors, signs
from services.analyzer.logparse import Frame, ParsedLog, Raised


@dataclass
class Facts:
    log: ParsedLog
    exit_code: int | None
    signal: int | None
    error_type: str  # as the trainer recorded it ("Stuck", "Signal", an exception type) or ""
    raised: Raised | None = None  # the exception of the chain the rules look at now

    @property
    def exc(self) -> str:
        return (self.raised.type if self.raised else self.log.exception_type) or self.error_type

    @property
    def msg(self) -> str:
        return self.raised.message if self.raised else self.log.message

    @property
    def frames(self) -> list[Frame]:
        return self.raised.frames if self.raised else self.log.frames

    def funcs(self) -> set[str]:
        return {f.func for f in self.frames}

    def files(self) -> str:
        return "\n".join(f.file for f in self.frames)


@dataclass
class Rule:
    category: str
    confidence: float
    match: Callable[[Facts], bool]
    cause: str = ""  # which way into the category, where the fix differs
    generic: bool = False  # tried only when no specific rule matched any exception of the chain


def _msg(pattern: str) -> Callable[[Facts], bool]:
    rx = re.compile(pattern, re.I | re.S)
    return lambda f: bool(rx.search(f.msg))


def _exc(*names: str) -> Callable[[Facts], bool]:
    return lambda f: any(f.exc == n or f.exc.endswith("." + n) for n in names)


def _both(a: Callable[[Facts], object], b: Callable[[Facts], object]) -> Callable[[Facts], bool]:
    return lambda f: bool(a(f) and b(f))


def _frames(*funcs: str) -> Callable[[Facts], bool]:
    return lambda f: bool(set(funcs) & f.funcs())


def _mined(f: Facts) -> library.Known | None:
    modules = {found[0] for frame in f.frames if (found := priors.innermost_library_frame([frame]))}
    return library.lookup(f.exc, f.msg, modules) if f.exc else None


def _known(category: str) -> Callable[[Facts], bool]:
    """The exception's message is one the libraries raise for `category` (mined from their sources)."""
    def match(f: Facts) -> bool:
        found = _mined(f)
        return found is not None and found.category == category
    return match


def _prior(category: str) -> Callable[[Facts], bool]:
    """The innermost library frame of this exception is a place that fails for `category`."""
    def match(f: Facts) -> bool:
        found = priors.prior(f.frames)
        return found is not None and found[0] == category
    return match


def _raised_in_data_or_own_code(f: Facts) -> bool:
    """The innermost library frame has no prior (priors.py), or one that says the data is at fault."""
    found = priors.prior(f.frames)
    return found is None or found[0] in ("", "DATASET_FORMAT", "DATASET_SCHEMA")


RULES: list[Rule] = [
    Rule("STUCK", 0.95, lambda f: f.error_type == "Stuck" or f.log.has_line(r"^ftlab watchdog: no progress")),
    Rule("NAN_OR_DIVERGENCE", 0.9, lambda f: _exc("DivergenceError")(f) or _msg(r"training diverged")(f)),
    # torch's own class, and the allocators of cuBLAS, cuDNN and the other device backends
    Rule("CUDA_OOM", 0.95, lambda f: _exc("OutOfMemoryError")(f) or _msg(
        r"CUDA out of memory|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_(ALLOC_FAILED|NOT_ENOUGH_WORKSPACE)|"
        r"(HIP|XPU|MPS backend) out of memory")(f)),
    # (the loader's "failed to map segment": no memory for a library, unless a noexec mount refused it)
    Rule("HOST_OOM", 0.9, _msg(r"DefaultCPUAllocator: can't allocate memory|Cannot allocate memory|std::bad_alloc|"
                               r"malloc of size \d+ failed|Unable to allocate [\d.]+ \w*B for an array|"
                               r"failed to map segment from shared object(?!: Operation not permitted)")),
    # Python's, NumPy's and Arrow's classes for an allocation that failed
    Rule("HOST_OOM", 0.8, _exc("MemoryError", "_ArrayMemoryError", "ArrowMemoryError")),
    # the trainer's own word: a kill counter of the run's memory cgroup or the kernel went up
    Rule("HOST_OOM", 0.95, lambda f: f.log.has_line(r"^ftlab trainer: the kernel's out-of-memory killer")),
    Rule("DISK_FULL", 0.95, _msg(r"No space left on device|Errno 28|Disk quota exceeded")),
    Rule("DISK_FULL", 0.9, lambda f: signs.disk_errno(f.msg)),
    # torch.save's zip writer reports a short write without its errno: a full disk, nearly always
    Rule("DISK_FULL", 0.8, _msg(r"PytorchStreamWriter failed writing|unexpected pos \d+ vs \d+")),
    # the trainer's own word: it found the job's disk full when the run failed, whatever the library said
    Rule("DISK_FULL", 0.9, lambda f: f.log.has_line(r"^ftlab trainer: the disk holding the job's folder is full")),
    # the job's file of sample prompts (services/common/prompts.py): not there, or not prompts
    Rule("DATASET_NOT_FOUND", 0.9, _both(_frames("load_prompts"), _exc("FileNotFoundError")), cause="prompts"),
    Rule("DATASET_FORMAT", 0.9, _frames("load_prompts"), cause="prompts"),
    Rule("DATASET_NOT_FOUND", 0.9, _both(_exc("FileNotFoundError", "DatasetNotFoundError"),
                                          lambda f: "datasets" in f.files() or "dataset" in f.msg.lower()
                                          or f.funcs() & {"load_rows", "_load_split"})),
    # datasets took the name for a dataset on the Hub, as no local file or builder has it
    Rule("DATASET_NOT_FOUND", 0.85, _both(_frames("dataset_module_factory"), _msg(r"Couldn't reach .* on the Hub"))),
    # bytes that are not text, where the dataset is read
    Rule("DATASET_FORMAT", 0.85, _both(_exc("UnicodeDecodeError", "UnicodeError"), lambda f: _frames(
        *signs.READING_DATA)(f) or "/datasets/" in f.files())),
    Rule("CHECKPOINT_NOT_FOUND", 0.9, _msg(r"(Can't find a|No) valid checkpoint|checkpoint.*(not found|does not exist)")),
    Rule("DATASET_FORMAT", 0.8, _both(_exc("StopIteration"), _frames("_split_generators")),  # datasets found no
         cause="no_rows"),  # table to read: the file is empty, or the path or pattern matched no file
    Rule("CHECKPOINT_CORRUPT", 0.85, _both(_exc("SafetensorError", "UnpicklingError", "EOFError"),
                                           lambda f: True)),
    Rule("CHECKPOINT_CORRUPT", 0.8, _msg(r"Error while deserializing header|invalid load key|PytorchStreamReader failed|"
                                         r"ignore_mismatched_sizes` to `False`")),  # weights of another shape
    # the trainer's own check of a checkpoint folder before it resumes (services/common/checkpoints.py)
    Rule("CHECKPOINT_CORRUPT", 0.9, _both(_exc("CheckpointError"), _msg(r"checkpoint \S+ is damaged"))),
    # transformers read a file given as the model (an archive, a weights file) as its config: no model folder.
    # Its OSError wraps the JSONDecodeError that is the chain's root, so every link's message is read here:
    # the root alone reads as a config.json that does not parse (the rule below)
    Rule("MODEL_NOT_FOUND", 0.8, lambda f: signs.file_given_as_model([r.message for r in f.log.chain])),
    # a model's own file that does not parse (its config, its tokenizer), met while the model loads
    Rule("CHECKPOINT_CORRUPT", 0.8, _both(_exc("JSONDecodeError", "UnicodeDecodeError"),
                                          _frames("from_pretrained", "_from_pretrained", "get_config_dict",
                                                  "_get_config_dict", "_dict_from_json_file"))),
    # the training state read back from a checkpoint, with a value of the wrong kind: the failing line
    # is transformers' own use of it, where it sets up the resumed run
    Rule("CHECKPOINT_CORRUPT", 0.75, lambda f: bool(f.frames) and f.frames[-1].func == "_init_training_state"
         and "self.state" in f.frames[-1].code and _exc("TypeError", "ValueError", "KeyError")(f)),
    # whatever fails while a checkpoint's state is read back to resume from it: the checkpoint is damaged
    # (a missing one was said above; a missing file inside one is a damaged one)
    Rule("CHECKPOINT_CORRUPT", 0.75, _both(_frames(*signs.RESUMING), lambda f: not _exc("ImportError")(f)
                                           and not _msg(r"out of memory|No space left")(f))),
    Rule("LORA_TARGET_MODULES", 0.95, _both(_exc("NoMatchingPeftModuleError", "ValueError"),
                                            _msg(r"Target modules .* not found in the base model"))),
    Rule("CHAT_TEMPLATE_MISSING", 0.95, _msg(r"tokenizer\.chat_template is not set|no chat template")),
    Rule("CHAT_TEMPLATE_INCOMPATIBLE", 0.9, _msg(r"not training-compatible|generation.*markers|"
                                                 r"assistant_only_loss.*template|chat template renders")),
    Rule("QUANTIZATION_UNSUPPORTED", 0.9, _msg(r"purely quantized models|bitsandbytes.*(not installed|not supported|"
                                               r"requires)|quantiz.*not supported")),
    # a model quantized by a method whose package is not installed (transformers' quantizers say which)
    Rule("QUANTIZATION_UNSUPPORTED", 0.85, _msg(signs.QUANTIZER_PACKAGE), cause="package"),
    # the trainer's own check of the job's experiment trackers (services/trainer/recipe.py)
    Rule("DEPENDENCY_MISSING", 0.95, _msg(r"^report_to \w+: the \S+ package is not installed"), cause="tracker"),
    Rule("DEPENDENCY_MISSING", 0.9, lambda f: _exc("ImportError", "ModuleNotFoundError", "PackageNotFoundError")(f)
         or _msg(r"package .* (doesn't seem to be|is not) installed")(f)),
    Rule("GPU_UNAVAILABLE", 0.85, _msg(r"no CUDA GPUs are available|Torch not compiled with \w+ enabled|"
                                       r"not linked with support for \w+ devices|CUDA driver initialization failed|"
                                       r"requires a GPU|Cannot access accelerator device when none is available|"
                                       r"Found no NVIDIA driver|CUDA-capable device\(s\) is/are busy or unavailable|"
                                       r"invalid device ordinal")),
    Rule("PRECISION_UNSUPPORTED", 0.85, _msg(r"unscale FP16 gradients|bf16.*(not supported|requires)|"
                                             r"\b(fp16|fp8|float8)\w*[^\n]*\b(not supported|requires)\b|"
                                             r"Bfloat16 is only supported|fp16.*only.*(GPU|CUDA)|"
                                             r"not implemented for '(Half|BFloat16|Float8\w*)'")),
    # an index past a learned position table (GPT-2's wpe, OPT's embed_positions): the sequence is too long
    Rule("SEQUENCE_TOO_LONG", 0.85, lambda f: _exc("IndexError", "RuntimeError")(f)
         and ("index out of range in self" in f.msg or "device-side assert" in f.msg)
         and "position" in _embedding_call(f).lower(), cause="positions"),
    # every example dropped after truncation to max_seq_length leaves nothing to train on
    Rule("SEQUENCE_TOO_LONG", 0.8, lambda f: "cuts away the completion of every" in f.msg or (
        "num_samples=0" in f.msg and f.log.has_line(r"Dropping fully (truncated|masked) examples")), cause="dropped"),
    Rule("TOKEN_ID_OUT_OF_RANGE", 0.85, _both(_exc("IndexError", "RuntimeError"),
                                              lambda f: "index out of range in self" in f.msg
                                              or "device-side assert" in f.msg
                                              or "srcIndex < srcSelectDimSize" in f.msg)),
    # a row of an embedding's weights looked up by a token id past its rows (e.g. PEFT's trainable tokens)
    Rule("TOKEN_ID_OUT_OF_RANGE", 0.75, lambda f: _exc("IndexError")(f) and "out of bounds for dimension 0" in f.msg
         and bool(f.frames) and bool(signs.TOKEN_ROWS.search(f.frames[-1].code))),
    Rule("SEQUENCE_TOO_LONG", 0.8, _msg(r"sequence length is longer than|exceeds the maximum|max_position_embeddings|"
                                        r"Token indices sequence length")),
    Rule("EVAL_CONFIG", 0.9, _msg(r"eval_strategy.*eval_dataset|evaluation requires an eval_dataset|"
                                  r"load_best_model_at_end requires|metric_for_best_model")),
    # a setting refused on the library's line that reads an evaluation setting: evaluation's settings
    Rule("EVAL_CONFIG", 0.75, lambda f: _exc("TypeError", "ValueError", "AttributeError", "ZeroDivisionError")(f)
         and bool(f.frames) and priors.innermost_library_frame(f.frames[-1:]) is not None
         and bool(signs.EVAL_SETTING.search(f.frames[-1].code))),
    # a loader setting refused while the evaluation data loader is built: evaluation's settings
    Rule("EVAL_CONFIG", 0.75, lambda f: _exc("TypeError", "ValueError")(f)
         and _frames("get_eval_dataloader", "get_test_dataloader")(f)
         and (priors.innermost_library_frame(f.frames) or ("",))[0].startswith("torch/utils/data/")),
    Rule("MODEL_NOT_FOUND", 0.9, _msg(r"couldn't connect to 'https://huggingface.co'|is not a local folder and is not a "
                                      r"valid model identifier|Repository Not Found|does not appear to have a file "
                                      r"named config.json|Can't load (the )?(config|tokenizer) for|"
                                      r"Couldn't instantiate the backend tokenizer|"  # no tokenizer file
                                      r"is a file, not a model folder")),
    Rule("DATASET_SCHEMA", 0.85, _both(_exc("KeyError"), _frames(*signs.MAPPING_ROWS))),
    # the job's dataset.columns names a column no row has (services/common/datasets.py)
    Rule("DATASET_SCHEMA", 0.9, _msg(r"^dataset\.columns maps .* but no row has"), cause="columns_absent"),
    Rule("DATASET_SCHEMA", 0.85, _msg(r"does not fit method"), cause="method"),
    Rule("DATASET_SCHEMA", 0.85, _msg(r"cannot tell the dataset format|does not fit the \w+ format|columns")),
    # a row without a column its format needs, as our data preparation converts the rows
    Rule("DATASET_SCHEMA", 0.85, _both(_exc("KeyError"), lambda f: "common/datasets.py" in f.files())),
    Rule("DATASET_FORMAT", 0.85, _msg(r"not valid JSON|has no rows|JSONDecodeError|ArrowInvalid|"
                                      r"is not valid .* data|unsupported dataset file type|corresponds to no data")),
    # a setting of 0 that the library divides by: the raising line names the argument
    Rule("INVALID_CONFIG", 0.75, _both(_exc("ZeroDivisionError"),
                                       lambda f: bool(f.frames) and "args." in f.frames[-1].code)),
    # the trainer's and pre-flight's own check of a model's config (services/common/model_folder.py)
    Rule("INVALID_CONFIG", 0.9, _msg(r"^the model's config\.json: "), cause="model_config"),
    # a setting of the wrong type (text where a mapping or a number is): the raising line uses the argument
    Rule("INVALID_CONFIG", 0.7, lambda f: _exc("AttributeError", "TypeError")(f) and bool(f.frames)
         and bool(re.search(r"\bargs\.\w+", f.frames[-1].code)) and bool(signs.WRONG_TYPE.search(f.msg))
         and not _frames(*signs.MAPPING_ROWS)(f)),
    Rule("DATASET_NOT_FOUND", 0.8, _exc("FileNotFoundError"), generic=True),
    # a folder where the data file should be, found while the data is read
    Rule("DATASET_NOT_FOUND", 0.75, _both(_exc("IsADirectoryError"), _frames(*signs.READING_DATA)), generic=True),
    # our own data reader's refusal that no rule above placed: the file cannot be used as it is
    Rule("DATASET_FORMAT", 0.7, _exc("DatasetError"), generic=True),
    # two columns of one row joined where one is turns and the other text: the row fits no format
    Rule("DATASET_SCHEMA", 0.7, lambda f: _exc("TypeError")(f) and bool(signs.MIXED_KINDS.search(f.msg))
         and _frames(*signs.MAPPING_ROWS)(f) and _raised_in_data_or_own_code(f), cause="mixed_kinds",
         generic=True),
    # a row's value of the wrong kind, met by the function mapped over the rows (e.g. a number where text is),
    # unless it was raised inside a library that fails for another reason (a template engine: the template's)
    Rule("DATASET_FORMAT", 0.65, _both(_both(_exc("AttributeError", "TypeError"), _frames("apply_function")),
                                       _raised_in_data_or_own_code), generic=True),
    # the libraries' own messages, mined from their sources: see scripts/mine_library_errors.py
    *[Rule(category, 0.7, _known(category), cause="mined", generic=True) for category in
      ("CUDA_OOM", "DISK_FULL", "CHAT_TEMPLATE_MISSING", "CHAT_TEMPLATE_INCOMPATIBLE", "LORA_TARGET_MODULES",
       "QUANTIZATION_UNSUPPORTED", "PRECISION_UNSUPPORTED", "GPU_UNAVAILABLE", "DEPENDENCY_MISSING", "EVAL_CONFIG",
       "CHECKPOINT_NOT_FOUND", "SEQUENCE_TOO_LONG", "CHECKPOINT_CORRUPT", "MODEL_NOT_FOUND", "DATASET_SCHEMA",
       "DATASET_FORMAT", "INVALID_CONFIG", "STUCK")],
    # where it was raised, when nothing above decided: see services/analyzer/priors.py
    *[Rule(category, 0.6, _prior(category), cause="prior", generic=True) for category in
      dict.fromkeys(row[2] for row in priors.PRIORS if row[2])],
    Rule("INVALID_CONFIG", 0.75, lambda f: _exc("ValueError", "TypeError")(f) and bool(
        re.search(r"Invalid|must be|has to be|needs? to be|should be|cannot be|can't be|expected|not a valid|unsupported|"
                  r"not supported|out of range|only (supports?|accepts?)|unexpected keyword argument|^unknown\b",
                  f.msg, re.I)),
         generic=True),
    Rule("KILLED_BY_SIGNAL", 0.7, lambda f: f.signal is not None or (f.exit_code is not None and f.exit_code < 0)
         or f.error_type == "Signal", generic=True),
]


def _embedding_call(f: Facts) -> str:
    """The model's source line that made the failing embedding lookup (e.g. `self.wpe(position_ids)`):
    the innermost frame in a modeling file, when the traceback ends in torch's embedding."""
    frames = f.frames
    if not any(frame.func == "embedding" for frame in frames[-3:]):
        return ""
    return next((frame.code for frame in reversed(frames) if "modeling_" in frame.file), "")


def classify(f: Facts) -> tuple[str, float, str]:
    """(category, confidence, cause) of the first rule that matches. The exceptions of the chain are
    tried root cause first, each against the specific rules, then each against the generic ones."""
    from dataclasses import replace

    links: Sequence[Raised | None] = f.log.chain or [None]
    for generic in (False, True):
        for raised in links:
            facts = replace(f, raised=raised)
            for rule in RULES:
                if rule.generic == generic and rule.match(facts):
                    return rule.category, rule.confidence, rule.cause
    if signs.diverged(f.log.metrics):
        return "NAN_OR_DIVERGENCE", 0.85, ""
    return "UNKNOWN", 0.2, ""


def killed_signal(f: Facts) -> int | None:
    if f.signal is not None:
        return f.signal
    if f.exit_code is not None and f.exit_code < 0:
        return -f.exit_code
    if f.exit_code is not None and f.exit_code > 128:
        return f.exit_code - 128
    return None


SIGKILL = signal.SIGKILL
