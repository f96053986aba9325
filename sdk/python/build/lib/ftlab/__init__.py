"""FineTune Lab's Python SDK: the generated API (ftlab.v1) and a small typed client."""

from ftlab.client import Client, FtlabError
from ftlab.config import apply_set, config_from_dict

__all__ = ["Client", "FtlabError", "apply_set", "config_from_dict"]
