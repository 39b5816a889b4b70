"""Source readers for the formats that need code, registered by name for `reader:` in a source's YAML file.

Importing this package imports every reader module, so `READERS` is complete.
"""

from harmscan.training.readers.base import READERS, register

__all__ = ["READERS", "register"]
