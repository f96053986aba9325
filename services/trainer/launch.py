"""One run on several processes: torchrun (torch.distributed.run, DDP) on this node.

    python -m services.trainer.launch --nproc N --spec RUN_DIR/spec.json --events-fd FD

Started by the trainer service in place of the child when a job asks for more than one GPU (on a
machine without GPUs: that many CPU processes over gloo). It keeps the child's contract with the
service: rank 0 reports on the service's pipe (reopened through /proc, since torchrun closes
inherited descriptors in its workers), SIGUSR1 (pause) reaches every rank, and every process dies
with the trainer service.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType

from services.trainer.process import EventSink, children, die_with_parent


def _forward(signum: int, _frame: FrameType | None) -> None:
    for pid in children(os.getpid()):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _fail(fd: int | None, message: str) -> int:
    print(f"ftlab: {message}", file=sys.stderr, flush=True)
    EventSink(fd).emit(error={"type": "ValueError", "message": message, "phase": "PHASE_STARTUP"})
    return 1


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    signal.signal(signal.SIGUSR1, _forward)  # before the slow imports: SIGUSR1 must never kill us
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nproc", type=int, required=True)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--events-fd", type=int, default=None)
    args = parser.parse_args(argv)

    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and gpus < args.nproc:
        return _fail(args.events_fd, f"the job asks for {args.nproc} GPUs (num_gpus) and this trainer has {gpus}")
    os.environ["FTLAB_PARENT_PID"] = str(os.getpid())  # the workers die with us, as we die with the service
    if args.events_fd is not None:
        os.environ["FTLAB_EVENTS_PATH"] = f"/proc/{os.getpid()}/fd/{args.events_fd}"
    print(f"ftlab: torchrun with {args.nproc} processes ({'GPUs, NCCL' if gpus else 'CPU, gloo'})", flush=True)

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(["--standalone", f"--nproc-per-node={args.nproc}", "--module", "services.trainer.child",
                  "--spec", args.spec])
    except ChildFailedError as exc:
        print(f"ftlab: a training process failed: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
