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


class MissingExtraError(HarmscanError, ImportError):
    """An optional dependency is not installed."""


def require(module: str, extra: str):
    """Import an optional dependency lazily, naming the pip extra when it is missing."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(
            f"'{module}' is not installed: pip install 'harmscan[{extra}]' ({exc})"
        ) from exc
