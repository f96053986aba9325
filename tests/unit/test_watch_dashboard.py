"""`ftlab watch`'s terminal dashboard, rendered from real event messages."""

from __future__ import annotations

from rich.console import Console

from ftlab.v1 import events_pb2, job_pb2
from services.cli.watch import Dashboard, sparkline


def test_sparkline_scales_between_min_and_max():
    assert sparkline([3.0, 2.0, 1.0]) == "█▅▁"
    assert sparkline([1.0] * 5) == "▁" * 5
    assert len(sparkline([float(i) for i in range(100)], width=40)) == 40
    assert sparkline([]) == ""


def test_dashboard_shows_progress_loss_speed_memory_eta_and_events():
    board = Dashboard("jobs/abc")
    running = job_pb2.JOB_STATE_RUNNING
    board.update(job_pb2.JobEvent(phase_changed=events_pb2.PhaseChanged(phase=events_pb2.PHASE_TRAINING)), running)
    for step, loss in enumerate([2.0, 1.5, 1.2, 1.0], start=1):
        board.update(job_pb2.JobEvent(metrics=events_pb2.TrainingMetrics(
            step=step, max_steps=8, loss=loss, tokens_per_second=6197.0, samples_per_second=24.5, eta_seconds=75,
            gpu_memory_allocated_bytes=3 << 30, gpu_memory_peak_bytes=5 << 30)), running)
    board.update(job_pb2.JobEvent(eval=events_pb2.EvalMetrics(step=4, eval_loss=1.1)), running)
    board.update(job_pb2.JobEvent(checkpoint_saved=events_pb2.CheckpointSaved(
        name="checkpoint-4", step=4, size_bytes=2 << 20, save_seconds=0.4)), running)
    console = Console(record=True, force_terminal=True, width=100)
    console.print(board)
    text = console.export_text()
    for expected in ("jobs/abc", "RUNNING", "training", "step 4/8", "ETA 1:15", "1.0000", "█", "▁",
                     "eval 1.1000", "6,197 tokens/s", "24.5 samples/s", "3.0 GiB allocated", "5.0 GiB peak",
                     "saved  checkpoint-4 (2.0 MiB in 0.4s)"):
        assert expected in text, (expected, text)


def test_the_last_frame_of_an_ended_job_shows_no_phase_under_way():
    board = Dashboard("jobs/abc")
    save = events_pb2.PhaseChanged(phase=events_pb2.PHASE_CHECKPOINT_SAVE)
    board.update(job_pb2.JobEvent(phase_changed=save), job_pb2.JOB_STATE_RUNNING)
    board.update(job_pb2.JobEvent(state_changed=job_pb2.StateChanged(to_state=job_pb2.JOB_STATE_SUCCEEDED)),
                 job_pb2.JOB_STATE_SUCCEEDED)
    console = Console(record=True, force_terminal=True, width=100)
    console.print(board)
    title = console.export_text().splitlines()[0]
    assert "SUCCEEDED" in title and "checkpoint save" not in title, title
