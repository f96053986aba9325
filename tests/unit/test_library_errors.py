"""The libraries' own error messages, mined from their installed sources."""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

import pytest

from ftlab.v1 import analyzer_pb2
from services.analyzer import library

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
import mine_library_errors as miner  # noqa: E402

DATA = json.loads(library.DATA.read_text())


def test_every_mined_message_has_a_category_or_is_unknown_on_purpose():
    categories = {n.removeprefix("FAILURE_CATEGORY_") for n in analyzer_pb2.FailureCategory.keys()} - {"UNSPECIFIED"}
    assert len(DATA["entries"]) > 1000
    for entry in DATA["entries"]:
        assert entry["category"] in categories, entry
        # the file is what the mapping says today: change MAPPING, run the miner again
        assert (entry["category"], entry["phase"]) == miner.categorize(entry), entry


def test_the_file_was_mined_from_the_installed_versions():
    for package, version in DATA["versions"].items():
        assert metadata.version(miner.DISTRIBUTIONS.get(package, package)) == version, (
            f"{package} is now {metadata.version(package)}: run scripts/mine_library_errors.py")


def test_a_message_raised_by_torch_is_found_where_it_was_raised():
    import torch

    with pytest.raises(ValueError) as raised:
        torch.utils.data.BatchSampler(range(3), batch_size=0, drop_last=False)
    known = library.lookup("ValueError", str(raised.value))
    assert known is not None and known.module == "torch/utils/data/sampler.py"
    assert known.category == "INVALID_CONFIG"


def test_a_message_no_library_raises_is_not_found():
    assert library.lookup("ValueError", "the moon is made of cheese and nobody raises this") is None
