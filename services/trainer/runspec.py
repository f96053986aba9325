"""What a run's child is told: the trainer writes it as RUN_DIR/spec.json, the child (and torchrun's
ranks) read it back. One frozen type for both sides, so a misspelled or missing key fails loudly
where the file is read, not later as a silent default."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from ftlab.v1 import config_pb2


@dataclass(frozen=True)
class RunSpec:
    config: dict[str, Any]  # the resolved TrainingConfig in its JSON shape (proto field names, enum names)
    job_dir: str
    checkpoints_dir: str
    run_dir: str = ""  # where the run's log and trackers write (default: job_dir/runs/unnamed)
    job_id: str = ""
    resume_from: str = ""  # a checkpoint folder to resume from
    resume_weights_only: bool = False  # take its weights, not its optimizer and step
    evaluation: dict[str, Any] | None = None  # an evaluation job's run: admission.evaluation_spec

    @classmethod
    def build(cls, config: config_pb2.TrainingConfig, **fields: Any) -> "RunSpec":
        """A spec for `config`, every field written out (an unset one with its default)."""
        as_json = json_format.MessageToDict(config, preserving_proto_field_name=True,
                                            always_print_fields_with_no_presence=True)
        return cls(config=as_json, **fields)

    @classmethod
    def read(cls, path: str | Path) -> "RunSpec":
        data = json.loads(Path(path).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: not a run spec: unknown key(s) {', '.join(unknown)}")
        spec = cls(**data)
        json_format.ParseDict(spec.config, config_pb2.TrainingConfig())  # a config the trainer can read
        return spec

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), indent=2).encode()

    @property
    def log_dir(self) -> str:
        return self.run_dir or str(Path(self.job_dir) / "runs" / "unnamed")
