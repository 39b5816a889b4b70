"""Where the data sources live: --data-dir, else $HARMSCAN_DATA_DIR, else the user cache dir."""

from __future__ import annotations

import os
from pathlib import Path

from harmscan.errors import DataError

DATA_DIR_ENV = "HARMSCAN_DATA_DIR"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "harmscan" / "data"


def resolve_data_dir(cli_value: str | os.PathLike[str] | None = None, must_exist: bool = True) -> Path:
    if cli_value:
        path, origin = Path(cli_value), "--data-dir"
    elif os.environ.get(DATA_DIR_ENV):
        path, origin = Path(os.environ[DATA_DIR_ENV]), f"${DATA_DIR_ENV}"
    else:
        path, origin = default_cache_dir(), "the default cache dir"
    path = path.expanduser()
    if must_exist and not path.is_dir():
        raise DataError(
            f"data directory {path} (from {origin}) does not exist: run `harmscan data fetch` "
            f"to download the sources, or pass --data-dir"
        )
    return path
