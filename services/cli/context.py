"""What every `ftlab` command shares: the consoles it writes to, JSON output, and the SDK client from the flags."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, TypeVar

from rich.console import Console

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from ftlab import Client

_WIDTH = None if sys.stdout.isatty() else 160  # rich assumes 80 columns when piped
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH, soft_wrap=True)  # an error stays one line
M = TypeVar("M", bound="Message")


def open_client(args: argparse.Namespace) -> Client:
    """A Client for --address and --timeout."""
    from ftlab import Client

    return Client(args.address, timeout=args.timeout)


def print_json(value: Message | list[M]) -> None:
    """A message, or a list of them, as JSON on stdout (field names as in the protos)."""
    from google.protobuf import json_format
    from google.protobuf.message import Message

    def plain(v: object) -> object:
        return json_format.MessageToDict(v, preserving_proto_field_name=True) if isinstance(v, Message) else v

    print(json.dumps([plain(v) for v in value] if isinstance(value, list) else plain(value), indent=2))
