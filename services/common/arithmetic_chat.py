"""A small chat dataset of sums, easy to learn so the loss visibly falls: `ftlab make-dataset` and the tests write it."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path


def arithmetic_chat_rows(rows: int, seed: int = 0, padding: int = 0) -> Iterator[dict[str, list[dict[str, str]]]]:
    """`rows` chat rows asking "What is A plus B?", the same ones for the same seed; `padding` puts that many
    words of preamble before each question."""
    rng = random.Random(seed)
    for _ in range(rows):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        preamble = " ".join(f"n{rng.randint(0, 999)}" for _ in range(padding))
        question = f"{preamble} What is {a} plus {b}?".lstrip()
        yield {"messages": [{"role": "user", "content": question},
                            {"role": "assistant", "content": f"{a} plus {b} is {a + b}."}]}


def write_arithmetic_chat(path: Path, rows: int, seed: int = 0, padding: int = 0) -> Path:
    """Those rows as JSONL at `path`, its folder made if need be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for row in arithmetic_chat_rows(rows, seed, padding):
            f.write(json.dumps(row) + "\n")
    return path
