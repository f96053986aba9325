"""A recorded failure case (a folder with log.txt and meta.json, as tests/fixtures hold them) as the
AnalyzeFailureRequest the scheduler sends for it, and scoring the analysis against what it expects.

For a run produced through the trainer (its meta has an error event), the request carries what the
scheduler passes in production: the error's type and phase, the exit status and signal, the job's
config. A bare script's run has only its log and exit code."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import json_format

from ftlab.v1 import analyzer_pb2, config_pb2, events_pb2


@dataclass
class Scored:
    name: str
    split: str
    expected: tuple[str, str]  # category, phase
    got: tuple[str, str]
    cause: str


def request_for(case: Path, as_in_production: bool = True) -> analyzer_pb2.AnalyzeFailureRequest:
    meta = json.loads((case / "meta.json").read_text())
    request = analyzer_pb2.AnalyzeFailureRequest(log=(case / "log.txt").read_text(errors="replace"))
    if meta.get("exit_code") is not None:
        request.exit_code = meta["exit_code"]
    event = meta.get("error_event") if as_in_production else None
    if event:
        request.error_type = event.get("type", "")
        if event.get("phase"):
            request.phase = events_pb2.Phase.Value(event["phase"])
    elif as_in_production and meta.get("last_phase_reported"):
        request.phase = events_pb2.Phase.Value(meta["last_phase_reported"])
    if as_in_production and meta.get("signal"):
        request.signal = meta["signal"]
    if as_in_production and isinstance(meta.get("config"), dict) and "base_model" in meta["config"]:
        config = json_format.ParseDict(meta["config"], config_pb2.TrainingConfig(), ignore_unknown_fields=True)
        request.config_json = json_format.MessageToJson(config)
    return request


def names(analysis: analyzer_pb2.FailureAnalysis) -> tuple[str, str]:
    return (analyzer_pb2.FailureCategory.Name(analysis.category).removeprefix("FAILURE_CATEGORY_"),
            events_pb2.Phase.Name(analysis.phase).removeprefix("PHASE_"))


def case_dirs(*roots: Path) -> list[Path]:
    return sorted(p for root in roots if root.is_dir() for p in root.iterdir() if (p / "meta.json").is_file())
