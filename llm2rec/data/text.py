"""Title text: the cleaning the protocol applies to every raw title, and the list of distinct titles the
LLM stages train on."""

from __future__ import annotations

import html
import re

# Titles are cut to this many characters after cleaning (at a word boundary when there is one); the
# protocol counts the cut titles in the manifest (dropped.titles_truncated). Real product titles are far
# shorter (Amazon caps them at 200); the cap bounds the work any one hostile title can make.
MAX_TITLE_CHARS = 1000
# Raw text beyond this is never looked at: cleaning stays linear and cheap on any input.
_MAX_RAW_CHARS = 20 * MAX_TITLE_CHARS

# Only real HTML tag names are stripped, so a title such as "Live <Deluxe Edition>" keeps its words.
_TAG_NAMES = (
    "a|abbr|b|big|blockquote|body|br|center|code|del|div|em|font|footer|h[1-6]|head|header|hr|html|i|iframe|img|"
    "input|ins|label|li|link|meta|nav|noscript|ol|p|pre|s|script|section|small|span|strike|strong|style|sub|"
    "sup|table|tbody|td|th|tr|u|ul"
)
# The whitespace around "/" is matched atomically (``(?=(\s*))\1`` is an atomic ``\s*`` in any Python):
# ``<\s*/?\s*`` made a run of spaces after "<" backtrack quadratically (8,000 spaces took 27 s), and even
# one ``\s*`` that gives back its spaces one by one costs a pass over the tag names for each of them.
_OPEN = r"<(?=(\s*))\1(?:/(?=(\s*))\2)?"
_TAG = re.compile(rf"{_OPEN}(?:{_TAG_NAMES})\b[^<>]*>", re.IGNORECASE)
# A tag cut off by the scraper (no closing ">"), e.g. '<span class="a-size-medium a-color-secondary': the
# rest of the string is markup, not a title.
_UNCLOSED_TAG = re.compile(rf"{_OPEN}(?:{_TAG_NAMES})\b[^<>]*$", re.IGNORECASE)
# Terminal escape sequences (ANSI CSI, e.g. "\x1b[31m") and every other control character (C0, DEL, C1).
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean_title(s: str) -> str:
    """:func:`clean_text`, cut to :data:`MAX_TITLE_CHARS` (:func:`cap_title`)."""
    return cap_title(clean_text(s))


def clean_text(s: str) -> str:
    """HTML entities decoded (also double-escaped ones), HTML tags, terminal escapes and control characters
    removed, whitespace collapsed, stripped. Linear in the input's length (which is cut at 20,000).

    Returns "" when nothing but markup is left, e.g. for the ``<span class=...`` titles of the 2018 metadata.
    """
    if not isinstance(s, str):
        return ""
    s = s[:_MAX_RAW_CHARS]
    for _ in range(3):  # "&amp;amp;" occurs in scraped metadata
        unescaped = html.unescape(s)
        if unescaped == s:
            break
        s = unescaped
    s = _ANSI.sub(" ", s)
    s = _CONTROL.sub(" ", s)
    s = _TAG.sub(" ", s)
    s = _UNCLOSED_TAG.sub(" ", s)
    return " ".join(s.split())


def cap_title(title: str, limit: int = MAX_TITLE_CHARS) -> str:
    """``title`` cut to ``limit`` characters, at the last space before the limit when there is one."""
    if len(title) <= limit:
        return title
    cut = title[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut


def unique_titles(titles: list[str]) -> list[str]:
    """Non-empty titles, each once, in first-seen order (index 0 is the padding item's empty title)."""
    seen: dict[str, None] = {}
    for title in titles:
        title = title.strip()
        if title:
            seen.setdefault(title, None)
    return list(seen)
