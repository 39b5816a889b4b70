"""Source readers for the formats that need code, registered by name for `reader:` in a source's YAML file.

Importing this package imports every reader module, so `READERS` is complete.
"""

# each reader module registers its readers when imported
from harmscan.training.readers import benign, comments, conversations, prompts, requests  # noqa: F401
from harmscan.training.readers.base import READERS, register

__all__ = ["READERS", "register"]
