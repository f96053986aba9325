"""How a run ended, from what the trainer saw: the exit status, the child's own result, how it was
being stopped, and whether it reported an error. Pure functions, tested without processes."""

from __future__ import annotations

import signal

from ftlab.v1 import events_pb2

E = events_pb2


def finished(rc: int, result: events_pb2.RunFinished | None, stop_mode: str) -> events_pb2.RunFinished:
    """The run's `finished` event: its exit status and outcome (rc < 0: killed by signal -rc)."""
    out = E.RunFinished(signal=-rc) if rc < 0 else E.RunFinished(exit_code=rc)
    told = result if result is not None and result.outcome != E.RUN_OUTCOME_UNSPECIFIED else None
    if stop_mode == "shutdown" and not (told is not None and told.outcome == E.RUN_OUTCOME_SUCCEEDED):
        out.outcome = E.RUN_OUTCOME_LOST  # its worker is going away: the job goes on elsewhere
        if rc == 0 and told is not None and told.resume_checkpoint:
            out.resume_checkpoint = told.resume_checkpoint
    elif rc == 0 and told is not None:
        out.MergeFrom(told)  # its outcome, output, train loss and checkpoint; the exit status is ours
        out.ClearField("signal")
        out.exit_code = 0
    elif stop_mode == "cancel":
        out.outcome = E.RUN_OUTCOME_CANCELLED
    else:
        out.outcome = E.RUN_OUTCOME_FAILED
    return out


def error(rc: int, *, stuck: str, error_seen: bool, phase: str, oom_killer: str = "") -> events_pb2.RunError | None:
    """The error the trainer reports for a failed run that did not report its own (None when it did):
    the watchdog's verdict, or the signal or exit code, with the kernel's out-of-memory kill when that
    is what the signal was. The caller adds the log tail."""
    exit_code, sig = (None, -rc) if rc < 0 else (rc, None)  # the one that is None stays unset
    if stuck:
        return E.RunError(type="Stuck", message=stuck, phase=E.Phase.Value(phase), exit_code=exit_code, signal=sig)
    if error_seen:
        return None
    if rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
        message = f"the training process was killed by {name}" + (f": {oom_killer}" if oom_killer else "")
        return E.RunError(type="Signal", message=message, phase=E.Phase.Value(phase), exit_code=exit_code, signal=sig)
    return E.RunError(type="ExitCode", message=f"the training process exited with code {rc} without reporting an error",
                      phase=E.Phase.Value(phase), exit_code=exit_code, signal=sig)
