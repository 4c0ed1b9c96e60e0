"""Title text: the cleaning the protocol applies to every raw title, and the list of distinct titles the\nLLM stages train on."""

from __future__ import annotations

import html
import re

# Only real HTML tag names are stripped, so a title such as "Live <Deluxe Edition>" keeps its words.
_TAG_NAMES = (
    "a|abbr|b|big|blockquote|body|br|center|code|del|div|em|font|footer|h[1-6]|head|header|hr|html|i|iframe|img|"
    "input|ins|label|li|link|meta|nav|noscript|ol|p|pre|s|script|section|small|span|strike|strong|style|sub|"
    "sup|table|tbody|td|th|tr|u|ul"
)
_TAG = re.compile(rf"<\s*/?\s*(?:{_TAG_NAMES})\b[^<>]*>", re.IGNORECASE)
# A tag cut off by the scraper (no closing ">"), e.g. '<span class="a-size-medium a-color-secondary': the
# rest of the string is markup, not a title.
_UNCLOSED_TAG = re.compile(rf"<\s*/?\s*(?:{_TAG_NAMES})\b[^<>]*$", re.IGNORECASE)


def clean_title(s: str) -> str:
    """HTML entities decoded (also double-escaped ones), HTML tags removed, whitespace collapsed, stripped.

    Returns "" when nothing but markup is left, e.g. for the ``<span class=...`` titles of the 2018 metadata.
    """
    if not isinstance(s, str):
        return ""
    for _ in range(3):  # "&amp;amp;" occurs in scraped metadata
        unescaped = html.unescape(s)
        if unescaped == s:
            break
        s = unescaped
    s = _TAG.sub(" ", s)
    s = _UNCLOSED_TAG.sub(" ", s)
    return " ".join(s.split())


def unique_titles(titles: list[str]) -> list[str]:
    """Non-empty titles, each once, in first-seen order (index 0 is the padding item's empty title)."""
    seen: dict[str, None] = {}
    for title in titles:
        title = title.strip()
        if title:
            seen.setdefault(title, None)
    return list(seen)
