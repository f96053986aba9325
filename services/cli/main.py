"""The `ftlab` command line: run the server, submit and watch jobs, and make a tiny model to try it.

Server address: --address or FTLAB_ADDRESS (default localhost:50051). Data directory: FTLAB_HOME.
The sub-commands are in job_commands.py and data_commands.py, their flags in parser.py; this module runs one
and turns what goes wrong into a message and an exit status (exits.py).
"""

from __future__ import annotations

import os
import signal
import sys

from services.cli.context import err_console
from services.cli.exits import EXIT_USAGE, exit_code
from services.cli.parser import build_parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "serve":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    from ftlab.errors import FtlabError

    try:
        status: int = args.fn(args, rest)
        return status
    except FtlabError as exc:
        if exc.code.name == "UNAVAILABLE" and "failed to connect" in exc.message:
            address = args.address or os.environ.get("FTLAB_ADDRESS") or "localhost:50051"
            err_console.print(f"[red]error:[/] no FineTune Lab server answers at {address}. Start one with "
                              "`ftlab serve`, or point --address or FTLAB_ADDRESS at yours; a server with TLS "
                              "needs FTLAB_TLS_CA, the CA file that signed its certificate.")
            return exit_code(exc.code)
        message = exc.message
        if exc.reason == "PREFLIGHT_FAILED":  # the CLI's word for the SDK's force=True
            message = message.replace("set force to queue it anyway", "add --force to queue it anyway")
        err_console.print(f"[red]error:[/] {exc.code.name}: {message}")
        for field, description in exc.field_violations:
            if f"{field}: {description}" not in message:  # said once
                err_console.print(f"  {field}: {description}")
        for subject, description in exc.preconditions:
            err_console.print(f"  {subject}: {description}")
        return exit_code(exc.code)
    except BrokenPipeError:  # `ftlab watch --json | head`: the reader has gone; end quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except (ValueError, OSError) as exc:
        err_console.print(f"[red]error:[/] {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
