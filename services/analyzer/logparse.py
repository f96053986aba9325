"""Read a training log: the last traceback (exception, message, frames) and the logged metrics."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

MAX_METRICS_LINE = 4096  # HF Trainer's metrics lines are a few hundred characters
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)')
_EXC_STRICT = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception): ")
_EXC = re.compile(r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit|Warning)?): ?(?P<msg>.*)$")
# an exception raised without a message ("StopIteration", "MemoryError"), as the line right after the frames
_BARE = re.compile(r"^(?:[a-z_]\w*\.)*[A-Z]\w*$")


@dataclass
class Frame:
    file: str
    func: str
    text: str
    code: str = ""  # the source line Python prints under the frame, when it does


@dataclass
class Raised:
    """One exception of a traceback: its type (as printed, module path included), message and frames."""
    type: str = ""
    message: str = ""
    line: str = ""
    frames: list[Frame] = field(default_factory=list)


_LINKS = ("During handling of the above exception", "The above exception was the direct cause")


@dataclass
class ParsedLog:
    lines: list[str]
    exception_type: str = ""
    message: str = ""
    exception_line: str = ""
    frames: list[Frame] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)  # numbers as floats, anything else as printed
    chain: list[Raised] = field(default_factory=list)  # the root cause first, the outermost exception last

    def frame_funcs(self) -> set[str]:
        return {f.func for f in self.frames}

    def frame_files(self) -> str:
        return "\n".join(f.file for f in self.frames)

    def frame_code(self) -> str:
        return "\n".join(f.code for f in self.frames)

    def has_line(self, pattern: str) -> bool:
        """Some line of the log (not only of the traceback) matches `pattern`."""
        rx = re.compile(pattern, re.I)
        return any(rx.search(line) for line in self.lines)


def _block(lines: list[str], start: int) -> tuple[Raised, int]:
    """The traceback whose header is at `start` (or whose frames begin just after it): its frames and
    its exception; and the index of the line after its message."""
    raised = Raised()
    i = start + 1
    while i < len(lines):
        m = _FRAME.match(lines[i])
        if m:
            code = lines[i + 1].strip() if i + 1 < len(lines) and lines[i + 1].startswith("    ") else ""
            raised.frames.append(Frame(m["file"], m["func"], lines[i].strip(), "" if set(code) <= set("^~ ") else code))
        elif lines[i] and not lines[i].startswith((" ", "\t")):
            e = _EXC.match(lines[i])
            if e is None and raised.frames and _BARE.match(lines[i]):
                raised.type, raised.message, raised.line = lines[i], "", lines[i]
                return raised, i + 1
            if e and not lines[i].startswith(_LINKS):
                raised.type, raised.message, raised.line = e["type"], e["msg"], lines[i]
                # the message may continue on the following lines (until a blank one)
                j = i + 1
                while j < len(lines) and lines[j].strip() and not lines[j].startswith(("Traceback", "[", "{") + _LINKS):
                    raised.message += "\n" + lines[j]
                    j += 1
                return raised, j
        i += 1
    return raised, i


def parse(text: str) -> ParsedLog:
    lines = [ln for ln in re.split(r"\r\n|\r|\n", text)]  # progress bars rewrite lines with \r
    log = ParsedLog(lines)
    headers = [i for i, ln in enumerate(lines) if "Traceback (most recent call last)" in ln]
    if not headers:  # a log cut above its traceback header: frames, then the exception line
        last = max((i for i, ln in enumerate(lines) if _EXC_STRICT.match(ln)), default=None)
        first_frame = next((i for i, ln in enumerate(lines) if _FRAME.match(ln)), None)
        if last is not None and first_frame is not None and first_frame < last:
            headers = [first_frame - 1]
    blocks = [_block(lines, start) + (start,) for start in headers]
    # the last traceback, and those it was raised from or while handling: "The above exception..."
    chain: list[Raised] = []
    for k in range(len(blocks) - 1, -1, -1):
        raised, _, start = blocks[k]
        if chain and not any(ln.startswith(_LINKS) for ln in lines[blocks[k][1]:blocks[k + 1][2]]):
            break
        chain.insert(0, raised)
    log.chain = [r for r in chain if r.type]
    if chain:
        outer = chain[-1]
        log.frames, log.exception_type, log.message, log.exception_line = (outer.frames, outer.type, outer.message,
                                                                          outer.line)
    for line in lines:
        stripped = line.strip()
        if (stripped.startswith("{") and stripped.endswith("}") and len(stripped) <= MAX_METRICS_LINE
                and ("'loss'" in stripped or "'eval_loss'" in stripped)):
            try:
                logged = ast.literal_eval(stripped)
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                continue  # not a metrics dict as HF Trainer prints one
            if isinstance(logged, dict):
                log.metrics.append({k: _number(v) for k, v in logged.items()})
    return log


def _number(value: Any) -> object:  # a value as ast.literal_eval gives it
    try:
        return float(value)
    except (TypeError, ValueError):
        return value
