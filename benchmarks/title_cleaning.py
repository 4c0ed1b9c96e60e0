"""Title cleaning is linear on hostile input: 1 MB titles built to make regexes backtrack.

Each pattern is cleaned at 100 kB and at 1 MB, twice: through ``clean_title`` (which looks at 20,000
characters at most) and through the tag patterns alone on the whole text, uncut, which shows that the
patterns themselves are linear (10× the input, about 10× the time). Targets (issue #11): every 1 MB title
through ``clean_title`` under 0.5 s, and the uncut patterns' time ratio (1 MB / 100 kB) under 20.

    python benchmarks/title_cleaning.py [--out benchmarks/results/title_cleaning.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from llm2rec.data.text import clean_title
from llm2rec.io import atomic_write_json

BUDGET_SECONDS = 0.5
PATTERNS = {
    "bracket then spaces": lambda n: "<" + " " * n,  # 8,000 spaces took 27 s before the fix
    "bracket slash spaces": lambda n: "< /" + " " * n,
    "many brackets": lambda n: "< " * (n // 2),
    "unclosed tag then text": lambda n: "<span " + "a" * n,
    "tags without end": lambda n: ("<b " + "x" * 20) * (n // 23),
    "entities": lambda n: "&amp;" * (n // 5),
    "control characters": lambda n: "\x1b[" * (n // 2),
}


def _seconds(text: str, clean=clean_title) -> float:
    start = time.perf_counter()
    clean(text)
    return time.perf_counter() - start


def _patterns_only(text: str) -> str:
    from llm2rec.data import text as t

    return t._UNCLOSED_TAG.sub(" ", t._TAG.sub(" ", t._CONTROL.sub(" ", t._ANSI.sub(" ", text))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "title_cleaning.json")
    args = ap.parse_args()
    rows = {}
    for name, make in PATTERNS.items():
        small, large = _seconds(make(100_000)), _seconds(make(1_000_000))
        raw_small, raw_large = (
            _seconds(make(100_000), _patterns_only),
            _seconds(make(1_000_000), _patterns_only),
        )
        rows[name] = {"clean_title_seconds_100kB": round(small, 5), "clean_title_seconds_1MB": round(large, 5),
                      "patterns_seconds_100kB": round(raw_small, 5), "patterns_seconds_1MB": round(raw_large, 5),
                      "patterns_ratio_10x_input": round(raw_large / max(raw_small, 1e-9), 1),
                      "within_budget": large < BUDGET_SECONDS and raw_large / max(raw_small, 1e-9) < 20}  # fmt: skip
    result = {
        "budget_seconds_per_1MB_title": BUDGET_SECONDS,
        "all_within_budget": all(r["within_budget"] for r in rows.values()),
        "patterns": rows,
        "machine": {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count()},
    }
    print(json.dumps(result, indent=2))
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
