"""Typed validation of settings (run configs, stage and recommender settings), with one-line errors.

A value of the wrong type (``kcore: five``, ``seeds: 2024``, ``lr: "fast"``) is refused before any work
starts, by a message that names the key, the value given and what was expected, instead of failing hours
later inside the training code. Validation is pydantic's (lax: ``"5"`` is accepted for an int, ``"1e-4"``
for a float).
"""

from __future__ import annotations

import re
from functools import cache

from llm2rec.errors import ConfigError


@cache
def _adapter(cls):
    from pydantic import TypeAdapter

    return TypeAdapter(cls)


def validated(cls, values: dict, where: str):
    """``cls(**values)`` with every field checked (and coerced) against its annotation.

    ``cls`` is a dataclass or a pydantic model; ``where`` prefixes the keys in messages (``csft``,
    ``seqrec.options``, ``config``).
    """
    from pydantic import ValidationError

    try:
        return _adapter(cls).validate_python(values)
    except ValidationError as exc:
        raise ConfigError(describe(exc, where)) from None


def describe(exc, where: str) -> str:
    """A pydantic ValidationError as one line per problem: ``where.key = value: what was expected``."""
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in (where, *error["loc"]) if part != "")
        message = error["msg"].removeprefix("Value error, ")
        message = re.sub(r" or instance of \w+", "", message)
        if error["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown config key (a typo?)")
        elif error["type"] == "missing":
            lines.append(f"{key}: missing")
        elif error["loc"] and "input" in error and error["type"] != "extra_forbidden":
            lines.append(f"{key} = {error['input']!r}: {message}")
        else:
            lines.append(f"{key}: {message}")
    return "; ".join(lines)
