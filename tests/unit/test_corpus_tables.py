"""The failure corpus's tables (scripts/failure_cases.py, scripts/bare_trl_cases.py and the rounds):
a case's name is its folder, so two rows with one name would overwrite each other's real log."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
import bare_trl_cases  # noqa: E402
import failure_cases  # noqa: E402


@pytest.mark.parametrize("table", [failure_cases.CASES, bare_trl_cases.CASES], ids=["trainer", "bare"])
def test_every_case_of_a_runner_has_its_own_name_and_its_own_cause(table):
    names = Counter(c["name"] for c in table)
    causes = Counter(c["cause"] for c in table)
    assert [n for n, k in names.items() if k > 1] == []
    assert [c for c, k in causes.items() if k > 1] == []
