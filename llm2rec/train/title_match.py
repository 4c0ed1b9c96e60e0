"""Graded matching of a generated title against the target and the catalogue.

Exact match is a harsh test for a small model after a short run: a generation that names the right
product with one word off scores 0. Two graded measures show whether CSFT is learning the task:

* token F1 between the generated and the target title (bag of lower-cased words, as in QA evaluation);
* grounded hit: the generation mapped to its nearest catalogue title (word Jaccard, the lexical cousin of
  BIGRec's grounding step) is the target item.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

_WORD = re.compile(r"\w+")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def token_f1(generated: str, target: str) -> float:
    gen, tgt = words(generated), words(target)
    common = len(gen & tgt)
    if common == 0:
        return 0.0
    precision, recall = common / len(gen), common / len(tgt)
    return 2 * precision * recall / (precision + recall)


class TitleIndex:
    """The item titles, with a word index for nearest-title lookups."""

    def __init__(self, titles):
        self.titles = list(dict.fromkeys(t.strip() for t in titles))
        self.exact = set(self.titles)
        self._words = [words(t) for t in self.titles]
        self._postings = defaultdict(list)
        for index, title_words in enumerate(self._words):
            for word in title_words:
                self._postings[word].append(index)

    def __contains__(self, title: str) -> bool:
        return title.strip() in self.exact

    def nearest(self, text: str) -> str | None:
        """The catalogue title with the highest word Jaccard to ``text`` (earliest on ties); None if no
        title shares a word with it."""
        query = words(text)
        overlap = Counter(i for word in query for i in self._postings.get(word, ()))
        if not overlap:
            return None
        best = max(overlap, key=lambda i: (overlap[i] / (len(query) + len(self._words[i]) - overlap[i]), -i))
        return self.titles[best]
