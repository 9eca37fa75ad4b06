"""Errors the CLI reports as one line (`error: <message>`, exit status 2) instead of a traceback.

Every message is a single line that names the offending file or setting and says how to fix it.
"""

from __future__ import annotations


class TTFSLabError(Exception):
    """Base class of ttfs-lab's user-facing errors."""


class ConfigError(TTFSLabError, ValueError):
    """A setting has an invalid value (e.g. an unknown dataset name or a fraction outside [0, 1))."""


class DataError(TTFSLabError, RuntimeError):
    """A dataset is missing, cannot be downloaded, or a file in it is corrupt."""


def first_line(exc: BaseException) -> str:
    """The first informative line of an exception's message, for embedding in a one-line error.

    A header line that ends with ':' (e.g. torchvision's "Error downloading x.gz:") is joined with the
    last line, which holds the underlying cause.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    reason = lines[0]
    if reason.endswith(":") and len(lines) > 1:
        reason = f"{reason} {lines[-1]}"
    return reason


class NonFiniteLossError(TTFSLabError, FloatingPointError):
    """The training loss became NaN or infinite; the run stops with its record and last checkpoint intact."""
