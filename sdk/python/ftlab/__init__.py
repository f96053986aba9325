"""FineTune Lab's Python SDK: the generated API (ftlab.v1) and a small typed client."""

from ftlab.client import Client, FtlabError
from ftlab.config import apply_set, config_from_dict
from ftlab.names import category_name, phase_name, state_name

__all__ = ["Client", "FtlabError", "apply_set", "category_name", "config_from_dict", "phase_name", "state_name"]
