"""FineTune Lab's Python SDK: the generated API (ftlab.v1) and a small typed client.

The client's names load on first use, so that importing the generated messages alone
(`from ftlab.v1 import events_pb2`) does not import gRPC: the trainer's zygote holds those messages
and must never hold gRPC, which does not survive fork()."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {"Client": "ftlab.client", "FtlabError": "ftlab.errors", "apply_set": "ftlab.config",
            "config_from_dict": "ftlab.config", "category_name": "ftlab.names", "phase_name": "ftlab.names",
            "state_name": "ftlab.names"}
__all__ = ["Client", "FtlabError", "apply_set", "category_name", "config_from_dict", "phase_name", "state_name"]

if TYPE_CHECKING:
    from ftlab.client import Client
    from ftlab.config import apply_set, config_from_dict
    from ftlab.errors import FtlabError
    from ftlab.names import category_name, phase_name, state_name


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ftlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
