"""The `ftlab` exit statuses a shell can rely on: the numbers, the words `ftlab --help` says of them, and the
gRPC status code behind each."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import grpc

EXIT_OK, EXIT_NOT_SUCCEEDED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_DENIED, EXIT_UNAVAILABLE, EXIT_SERVER = 0, 1, 2, 3, 4, 5, 6
EXIT_CODES = """exit status: 0 done (for watch: the job succeeded or paused; an empty listing is done too);
1 the job watched failed or was cancelled, or `analyze JOB` found no failure analysis to show;
2 bad usage or input (INVALID_ARGUMENT, FAILED_PRECONDITION, a job file that does not parse, ...);
3 no such job or artifact (NOT_FOUND); 4 not allowed (UNAUTHENTICATED, PERMISSION_DENIED);
5 the server cannot be reached (UNAVAILABLE, DEADLINE_EXCEEDED); 6 any other server error"""


def exit_code(code: grpc.StatusCode) -> int:
    """The exit status for a gRPC status code."""
    name = code.name
    if name == "NOT_FOUND":
        return EXIT_NOT_FOUND
    if name in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return EXIT_DENIED
    if name in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        return EXIT_UNAVAILABLE
    if name in ("INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE", "ALREADY_EXISTS", "RESOURCE_EXHAUSTED",
                "ABORTED"):
        return EXIT_USAGE
    return EXIT_SERVER
