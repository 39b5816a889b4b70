"""`normalize_text` with an offset map back to the caller's original string, for spans.

The one implementation lives in the core (`harmscan.text`: the steps are written once and run with or
without offsets); the runtime imports it from here.
"""

from __future__ import annotations

from harmscan.text import MappedText, normalize_with_offsets

__all__ = ["MappedText", "normalize_with_offsets"]
