"""How a run ended, from what the trainer saw: the exit status, the child's own result, how it was
being stopped, and whether it reported an error. Pure functions, tested without processes."""

from __future__ import annotations

import signal

SUCCEEDED, FAILED, CANCELLED, LOST = ("RUN_OUTCOME_SUCCEEDED", "RUN_OUTCOME_FAILED", "RUN_OUTCOME_CANCELLED",
                                      "RUN_OUTCOME_LOST")
_RESULT_FIELDS = ("outcome", "output", "train_loss", "resume_checkpoint")


def finished(rc: int, result: dict | None, stop_mode: str) -> dict:
    """The run's `finished` event: its exit status and outcome (rc < 0: killed by signal -rc)."""
    out: dict = {"signal": -rc} if rc < 0 else {"exit_code": rc}
    result = result or {}
    if stop_mode == "shutdown" and result.get("outcome") != SUCCEEDED:
        out["outcome"] = LOST  # its worker is going away: the job goes on elsewhere
        if rc == 0 and result.get("resume_checkpoint"):
            out["resume_checkpoint"] = result["resume_checkpoint"]
    elif rc == 0 and result:
        out.update({k: v for k, v in result.items() if k in _RESULT_FIELDS})
    elif stop_mode == "cancel":
        out["outcome"] = CANCELLED
    else:
        out["outcome"] = FAILED
    return out


def error(rc: int, *, stuck: str, error_seen: bool, phase: str, oom_killer: str = "") -> dict | None:
    """The error the trainer reports for a failed run that did not report its own (None when it did):
    the watchdog's verdict, or the signal or exit code, with the kernel's out-of-memory kill when that
    is what the signal was. Carries RunError's own fields only; the caller adds the log tail."""
    status = {"signal": -rc} if rc < 0 else {"exit_code": rc}
    if stuck:
        return {"type": "Stuck", "message": stuck, "phase": phase, **status}
    if error_seen:
        return None
    if rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
        message = f"the training process was killed by {name}" + (f": {oom_killer}" if oom_killer else "")
        return {"type": "Signal", "message": message, "phase": phase, **status}
    return {"type": "ExitCode", "message": f"the training process exited with code {rc} without reporting an error",
            "phase": phase, **status}
