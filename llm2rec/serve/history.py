"""A recommender's catalogue (an immutable snapshot) and how a history entry is read against it.

The rule, the same for ``llm2rec recommend --history``, ``POST /api/recommend`` and
``Recommender.recommend``:

=====================  =========================================================================
entry                  read as
=====================  =========================================================================
an integer (not text)  an item id (Python ``int``, a JSON number); it must be in 1..N
``id:123``             item id 123 (it must be in 1..N)
``key:B00004Z5M1``     the item with that key (it must exist)
``title:Some Title``   that title: a catalogue title (case and spacing ignored), else a new title
anything else          a known item key, else a known title, else a new title
=====================  =========================================================================

So a bare ``"1984"`` is never an item id: it is the key ``1984`` if the catalogue has one, else the
title "1984" (known or new); write ``id:1984`` for the item id. A *new* title is one the catalogue does
not hold; the recommender embeds it for the request that named it only (see ``Recommender.rank``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from llm2rec.errors import ConfigError

Kind = Literal["id", "key", "title", "new"]
PREFIXES = ("id:", "key:", "title:")


def norm_title(text: str) -> str:
    """How titles are matched: spacing collapsed, case folded."""
    return " ".join(str(text).split()).casefold()


@dataclass(frozen=True)
class HistoryEntry:
    """How one history entry was read: ``kind`` id / key / title (catalogue items) or new (a title the
    catalogue does not hold, ``item_id`` None)."""

    given: int | str
    kind: Kind
    item_id: int | None
    title: str

    def as_dict(self) -> dict:
        return {"given": self.given, "kind": self.kind, "item_id": self.item_id, "title": self.title}


@dataclass(frozen=True)
class Catalogue:
    """Items 1..size (row 0 is padding): titles, keys, lookups and the recommender's item table. Never
    changed in place: :meth:`extended` returns a new one, so a request reads one consistent snapshot."""

    titles: tuple[str, ...]
    keys: tuple[str, ...]
    table: object  # torch.Tensor, (size + 1, hidden)
    by_key: dict[str, int] = field(repr=False)
    by_title: dict[str, int] = field(repr=False)

    @classmethod
    def build(cls, titles, keys, table) -> Catalogue:
        by_title: dict[str, int] = {}
        for i, title in enumerate(titles[1:], start=1):
            by_title.setdefault(norm_title(title), i)
        by_key = {k: i for i, k in enumerate(keys) if k}
        return cls(tuple(titles), tuple(keys), table, by_key, by_title)

    @property
    def size(self) -> int:
        return len(self.titles) - 1

    def find_title(self, title: str) -> int | None:
        return self.by_title.get(norm_title(title))

    def extended(self, titles: list[str], rows) -> Catalogue:
        """A new catalogue with ``titles`` (their item-table ``rows``) appended as items size+1.."""
        import torch

        table = torch.cat([self.table, rows.to(self.table.dtype)])
        by_title = dict(self.by_title)
        for offset, title in enumerate(titles, start=self.size + 1):
            by_title.setdefault(norm_title(title), offset)
        return Catalogue(self.titles + tuple(titles), self.keys + ("",) * len(titles), table,
                         self.by_key, by_title)  # fmt: skip

    def read(self, entry) -> HistoryEntry:
        """One history entry under the module's rule."""
        if isinstance(entry, bool) or not isinstance(entry, int | str | np.integer):
            raise ConfigError(f"{entry!r} is not a history entry (an item id, an item key or a title)")
        if not isinstance(entry, str):
            return self._by_id(int(entry), int(entry))
        text = entry.strip()
        if text.startswith("id:"):
            number = text[3:].strip()
            if not number.isdigit():
                raise ConfigError(f"{entry!r}: id: needs an item id (a whole number), e.g. id:12")
            return self._by_id(int(number), entry)
        if text.startswith("key:"):
            key = text[4:].strip()
            if key not in self.by_key:
                raise ConfigError(f"{entry!r}: no item key {key!r} in the catalogue")
            return HistoryEntry(entry, "key", self.by_key[key], self.titles[self.by_key[key]])
        forced = text.startswith("title:")
        title = text[6:].strip() if forced else text
        if not title:
            raise ConfigError(f"an empty history entry ({entry!r})")
        if not forced and title in self.by_key:
            return HistoryEntry(entry, "key", self.by_key[title], self.titles[self.by_key[title]])
        found = self.find_title(title)
        if found is not None:
            return HistoryEntry(entry, "title", found, self.titles[found])
        return HistoryEntry(entry, "new", None, " ".join(title.split()))

    def _by_id(self, item: int, given) -> HistoryEntry:
        if not 1 <= item <= self.size:
            raise ConfigError(f"item id {item} is not in 1..{self.size}")
        return HistoryEntry(given, "id", item, self.titles[item])
