"""Exceptions that mean "the user's input or setup is wrong"; the CLI prints them as one line.

This module imports nothing from llm2rec, so every layer can raise these without import cycles.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Base of every error caused by the user's input or setup (never by a bug in llm2rec)."""


class ConfigError(UserError, ValueError):
    """A bad option, config key or value."""


class DataFormatError(UserError, ValueError):
    """Bad input: the message names the file, the line (when known) and what was wrong."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


class DatasetError(UserError, ValueError):
    """A prepared dataset directory is missing, incomplete or of another format version."""


class DownloadError(UserError, RuntimeError):
    """A download could not be done (offline, not found, bad size, unknown category); one-line message."""


class OutputError(UserError):
    """An output path that must not be written or replaced (an input, a directory we did not write...)."""


USER_ERRORS: tuple[type[BaseException], ...] = (UserError, FileExistsError, FileNotFoundError)
