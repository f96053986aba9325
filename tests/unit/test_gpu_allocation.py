"""A trainer gives each run GPUs of its own, and refuses a run it cannot hold with the right status."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.errors import FailedPrecondition, ResourceExhausted
from services.trainer.supervisor import Run, RunSupervisor


def holding(supervisor: RunSupervisor, name: str, gpus: list[int]) -> None:
    supervisor.runs[name] = Run(name, "job", Path("."), Path("log"), gpus=gpus)


def test_runs_get_disjoint_gpus_and_free_ones_are_reused():
    s = RunSupervisor(Path("."), max_runs=4, gpu_indices=[0, 1, 2, 3])
    first = s.allocate_gpus(2)
    holding(s, "a", first)
    second = s.allocate_gpus(2)
    assert first == [0, 1] and second == [2, 3]
    holding(s, "b", second)
    with pytest.raises(ResourceExhausted) as full:
        s.allocate_gpus(1)
    assert full.value.reason == "WORKER_FULL"
    s.runs["a"].done = True
    assert s.allocate_gpus(1) == [0]


def test_a_job_wanting_more_gpus_than_the_machine_has_is_a_failed_precondition():
    s = RunSupervisor(Path("."), gpu_indices=[0])
    with pytest.raises(FailedPrecondition) as err:
        s.allocate_gpus(2)
    assert err.value.reason == "NOT_ENOUGH_GPUS" and "asks for 2 GPUs" in str(err.value)


def test_a_cpu_machine_allocates_no_gpus():
    assert RunSupervisor(Path("."), gpu_indices=[]).allocate_gpus(2) == []
