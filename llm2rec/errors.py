"""Exceptions that mean "the user's input or setup is wrong"; the CLI prints them as one line."""

from __future__ import annotations

from llm2rec.data.dataset import DatasetError
from llm2rec.data.download import DownloadError
from llm2rec.data.schema import DataFormatError


class ConfigError(ValueError):
    """A bad option, config key or value."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    DataFormatError,
    DatasetError,
    ConfigError,
    DownloadError,
    FileExistsError,
    FileNotFoundError,
)
