"""The closest known failure: when no rule decides, a failed run is compared with the development
half's real failures (services/analyzer/data/known_failures.json, made by scripts/known_failures.py)
by what generalizes across wordings: the exceptions' classes, where the libraries raised them (package,
module, function), the functions on the stack, the trainer's verdicts (its watchdog's, its notes of an
out-of-memory kill or a full disk), how the process ended and the message's words. Only a run that
raised an exception is compared: one that raised none is the signal's, the watchdog's or the metrics'
to tell (services/analyzer/rules.py), and its last lines are progress, not a cause.
Features are weighted by how rare they are among the known failures (TF-IDF) and compared by cosine;
the nearest known failures vote for a category, and a vote too weak is no answer.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from services.analyzer import priors
from services.analyzer.logparse import ParsedLog, Raised

DATA = Path(__file__).parent / "data" / "known_failures.json"
K = 3  # known failures that vote
MIN_SCORE = 0.35  # chosen on the development half alone (scripts/known_failures.py --cross-validate)

# paths, numbers, hex, and the words of a path left after it: none of them generalizes across runs
_NOISE = re.compile(r"\S*[/\\]\S*|\b0x[0-9a-f]+\b|\b\d+\b")
_WORD = re.compile(r"[a-z][a-z0-9_]{2,}")  # fp16, int8 and bf16 are words
_STOP = frozenset("the and for with that this not was are but you your from has have can when its".split())


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(_NOISE.sub(" ", text.lower())) if w not in _STOP]


def _raised(raised: Raised, weight: float, out: defaultdict[str, float]) -> None:
    out["exc:" + raised.type.rsplit(".", 1)[-1]] += 2 * weight
    found = priors.innermost_library_frame(raised.frames)
    if found:
        inner, frame = found
        out["lib:" + inner.split("/", 1)[0]] += weight
        out["mod:" + inner] += weight
        out[f"fn:{inner}:{frame.func}"] += weight
    for frame in raised.frames[-8:]:
        out["call:" + frame.func] += 0.5 * weight
    for word in _words(raised.message[:600]):
        out["w:" + word] += 0.5 * weight


def features(log: ParsedLog, error_type: str = "", exit_code: int | None = None,
             signal: int | None = None) -> dict[str, float]:
    """A run's features: its exceptions, root cause first and weighed most; where nothing was raised,
    the words of the log's last lines. Plus the trainer's own records and how the process ended."""
    out: defaultdict[str, float] = defaultdict(float)
    for i, raised in enumerate(log.chain):
        _raised(raised, 1.0 if i == 0 else 0.5, out)
    if not log.chain:
        for word in _words(" ".join(ln for ln in log.lines[-6:] if ln.strip())):
            out["w:" + word] += 0.5
    for line in log.lines:
        if line.startswith(("ftlab trainer:", "ftlab watchdog:")):
            out["ftlab:" + " ".join(_words(line)[2:5])] += 1
    if error_type and not log.chain:
        out["error:" + error_type] += 1
    if signal or (exit_code is not None and (exit_code < 0 or exit_code > 128)):
        out["ended:signal"] += 1
    return dict(out)


@dataclass(frozen=True)
class Known:
    name: str
    cause: str
    category: str
    phase: str
    features: dict[str, float]


@dataclass(frozen=True)
class Match:
    category: str
    score: float  # the winning category's share of the vote times the best similarity, 0..1
    nearest: Known
    similarity: float


class Index:
    def __init__(self, known: list[Known]) -> None:
        self.known = known
        df: Counter[str] = Counter(f for k in known for f in k.features)
        n = len(known)
        self.idf = {f: math.log((1 + n) / (1 + d)) + 1 for f, d in df.items()}
        self.vectors = [self._vector(k.features) for k in known]

    def _vector(self, feats: dict[str, float]) -> dict[str, float]:
        v = {f: w * self.idf.get(f, 0.0) for f, w in feats.items() if f in self.idf}
        norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
        return {f: x / norm for f, x in v.items()}

    def nearest(self, feats: dict[str, float], exclude: frozenset[str] = frozenset()) -> Match | None:
        """The category the K nearest known failures vote for (each by its similarity), leaving out the
        causes in `exclude` (cross-validation leaves a cause's own logs out)."""
        v = self._vector(feats)
        if not v:
            return None
        ranked = sorted(((sum(x * kv.get(f, 0.0) for f, x in v.items()), k)
                         for k, kv in zip(self.known, self.vectors, strict=True) if k.cause not in exclude),
                        key=lambda pair: -pair[0])[:K]
        if not ranked or ranked[0][0] <= 0:
            return None
        votes: defaultdict[str, float] = defaultdict(float)
        for sim, k in ranked:
            votes[k.category] += sim
        category, vote = max(votes.items(), key=lambda item: item[1])
        best_sim, best = next((s, k) for s, k in ranked if k.category == category)
        return Match(category, vote / sum(votes.values()) * best_sim, best, best_sim)


@functools.lru_cache(maxsize=1)
def index() -> Index:
    if not DATA.is_file():
        return Index([])
    rows = json.loads(DATA.read_text())["known"]
    return Index([Known(r["name"], r["cause"], r["category"], r["phase"], r["features"]) for r in rows])


def closest(log: ParsedLog, error_type: str = "", exit_code: int | None = None,
            signal: int | None = None) -> Match | None:
    """The closest known failures' verdict, or None when the run raised no exception, or they are not
    close enough to decide, or they are themselves failures no category fits."""
    if not log.chain:
        return None
    match = index().nearest(features(log, error_type, exit_code, signal))
    return match if match is not None and match.score >= MIN_SCORE and match.category != "UNKNOWN" else None
