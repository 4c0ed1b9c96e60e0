"""Download Amazon Reviews 2023 files from the dataset's public server (or a mirror).

Two kinds of files (see ``AMAZON2023.md`` in the project's data notes):

* ``raw``: ``raw/review_categories/<Category>.jsonl.gz`` and ``raw/meta_categories/meta_<Category>.jsonl.gz``;
* ``benchmark``: ``benchmark/<k>core/<variant>/<Category>[.<split>].csv.gz`` (``rating_only`` is one file,
  the other variants are ``train``/``valid``/``test``).

Files land flat in ``out_dir`` under their server names. A download streams into ``<name>.part`` and is
renamed only once complete and of the size the server announced, so ``out_dir`` never holds half a file
under its final name; an interrupted download resumes from the ``.part`` file with an HTTP Range request.
A file already present under its final name is kept (delete it to fetch it again).

Only the standard library is needed at import time (the CLI imports this lazily anyway); the progress
bar uses tqdm.
"""

from __future__ import annotations

import difflib
import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from llm2rec.errors import DownloadError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023"
BASE_URL_ENV = "LLM2REC_AMAZON_BASE_URL"

CATEGORIES = (
    "All_Beauty", "Amazon_Fashion", "Appliances", "Arts_Crafts_and_Sewing", "Automotive", "Baby_Products",
    "Beauty_and_Personal_Care", "Books", "CDs_and_Vinyl", "Cell_Phones_and_Accessories",
    "Clothing_Shoes_and_Jewelry", "Digital_Music", "Electronics", "Gift_Cards", "Grocery_and_Gourmet_Food",
    "Handmade_Products", "Health_and_Household", "Health_and_Personal_Care", "Home_and_Kitchen",
    "Industrial_and_Scientific", "Kindle_Store", "Magazine_Subscriptions", "Movies_and_TV",
    "Musical_Instruments", "Office_Products", "Patio_Lawn_and_Garden", "Pet_Supplies", "Software",
    "Sports_and_Outdoors", "Subscription_Boxes", "Tools_and_Home_Improvement", "Toys_and_Games",
    "Video_Games", "Unknown",
)  # fmt: skip
"""The 33 categories of ``all_categories.txt`` plus ``Unknown``."""

NO_5CORE = frozenset(
    {
        "Amazon_Fashion",
        "Appliances",
        "Digital_Music",
        "Handmade_Products",
        "Health_and_Personal_Care",
        "Subscription_Boxes",
    }
)
"""Categories the server has no 5-core benchmark files for (``5core.md``)."""

BENCHMARK_VARIANTS = ("rating_only", "last_out", "last_out_w_his", "timestamp", "timestamp_w_his")
KCORES = (0, 5)
DEFAULT_VARIANT = "5core/last_out_w_his"
KINDS = ("raw", "benchmark")
CHUNK_BYTES = 1 << 20


def resolve_category(category: str) -> str:
    """Return the canonical spelling of ``category``; accept case and space/hyphen differences."""
    if category in CATEGORIES:
        return category
    folded = {_fold(c): c for c in CATEGORIES}
    if _fold(category) in folded:
        return folded[_fold(category)]
    close = difflib.get_close_matches(category, CATEGORIES, n=3, cutoff=0.5)
    close += [
        c
        for c in difflib.get_close_matches(_fold(category), folded, n=3, cutoff=0.5)
        if folded[c] not in close
    ]
    if close:
        hint = f"did you mean {', '.join(folded.get(c, c) for c in close)}?"
    else:
        hint = f"known categories: {', '.join(CATEGORIES)}"
    raise DownloadError(f"unknown Amazon 2023 category {category!r}; {hint}")


def _fold(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip()).lower()


def parse_variant(variant: str) -> tuple[int, str]:
    """``"5core/last_out_w_his"`` → ``(5, "last_out_w_his")``."""
    match = re.fullmatch(r"(\d+)core/(\w+)", variant.strip())
    if not match or int(match.group(1)) not in KCORES or match.group(2) not in BENCHMARK_VARIANTS:
        choices = ", ".join(f"{k}core/{v}" for k in KCORES for v in BENCHMARK_VARIANTS)
        raise DownloadError(f"unknown benchmark variant {variant!r}; choose one of: {choices}")
    return int(match.group(1)), match.group(2)


def remote_paths(category: str, kind: str = "raw", variant: str = DEFAULT_VARIANT) -> list[str]:
    """Paths relative to the base URL of the files that make up (category, kind[, variant])."""
    category = resolve_category(category)
    if kind == "raw":
        return [f"raw/review_categories/{category}.jsonl.gz", f"raw/meta_categories/meta_{category}.jsonl.gz"]
    if kind != "benchmark":
        raise DownloadError(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}")
    kcore, name = parse_variant(variant)
    if kcore == 5 and category in NO_5CORE:
        raise DownloadError(
            f"{category} has no 5-core benchmark files on the server; use variant '0core/{name}'"
        )
    folder = f"benchmark/{kcore}core/{name}"
    if name == "rating_only":
        return [f"{folder}/{category}.csv.gz"]
    return [f"{folder}/{category}.{split}.csv.gz" for split in ("train", "valid", "test")]


def download(
    category: str,
    kind: str = "raw",
    out_dir: str | Path = ".",
    *,
    base_url: str | None = None,
    variant: str = DEFAULT_VARIANT,
    progress: bool = True,
    timeout: float = 60.0,
) -> list[Path]:
    """Download the Amazon 2023 files of ``category`` into ``out_dir`` and return their paths.

    ``kind`` is ``"raw"`` (reviews + metadata JSONL) or ``"benchmark"`` (the published split CSVs of
    ``variant``, e.g. ``"5core/last_out_w_his"`` or ``"0core/rating_only"``). ``base_url`` defaults to
    ``$LLM2REC_AMAZON_BASE_URL`` or else the dataset's public server. Raises :class:`DownloadError`.
    """
    paths = remote_paths(category, kind, variant)
    base = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
    out_dir = check_download_dir(Path(out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for rel in paths:
        target = out_dir / rel.rsplit("/", 1)[-1]
        if target.is_file():
            log.info("%s already present; delete it to download again", target)
        else:
            fetch(f"{base}/{rel}", target, progress=progress, timeout=timeout)
        done.append(target)
    return done


def check_download_dir(out_dir: Path) -> Path:
    """The common output check for a folder that downloads are added to (it may hold other files: only
    the named files are written, nothing else is touched): a directory, or a path one can be made at,
    where llm2rec can write."""
    from llm2rec.errors import OutputError
    from llm2rec.outdir import check_writable_dir, check_writable_parent

    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir} exists and is not a directory; choose another --out")
    if out_dir.is_dir():
        check_writable_dir(out_dir)
    else:
        check_writable_parent(out_dir)
    return out_dir


def fetch(url: str, target: str | Path, *, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``target`` through ``target.part``, resuming it if present; return ``target``."""
    target = Path(target)
    part = target.with_name(target.name + ".part")
    for _attempt in range(2):  # a second attempt only after discarding a stale .part file
        offset = part.stat().st_size if part.is_file() else 0
        try:
            total = _stream(url, part, offset, progress=progress, timeout=timeout)
        except _StalePart:
            part.unlink()
            continue
        size = part.stat().st_size
        if total is not None and size != total:
            if size > total:  # cannot be resumed into anything sensible
                part.unlink()
            raise DownloadError(
                f"{url}: got {size} bytes but the server announced {total}; "
                + ("run again to resume" if size < total else "the partial file was removed, run again")
            )
        os.replace(part, target)
        return target
    raise DownloadError(f"{url}: the server keeps rejecting the resume request; delete {part} and retry")


class _StalePart(Exception):
    """The .part file does not fit the remote file (HTTP 416)."""


def _stream(url: str, part: Path, offset: int, *, progress: bool, timeout: float) -> int | None:
    """Append the bytes from ``offset`` on to ``part``; return the remote file's total size if known."""
    headers = {"User-Agent": "llm2rec-download"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            total = _total_from_content_range(err.headers.get("Content-Range"))
            if total == offset:  # the .part file already holds everything
                return total
            raise _StalePart() from err
        hint = " (check the category and variant)" if err.code == 404 else ""
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}{hint}") from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(
            f"cannot reach {url}: {reason}. Are you offline? A mirror can be set with --base-url or ${BASE_URL_ENV}"
        ) from err
    with response:
        if offset and response.status == 206:
            start = _start_from_content_range(response.headers.get("Content-Range"))
            if start != offset:
                raise DownloadError(
                    f"{url}: server resumed at byte {start}, asked for {offset}; delete {part}"
                )
            total = _total_from_content_range(response.headers.get("Content-Range"))
            mode = "ab"
        else:  # 200: the server ignores Range (or there was nothing to resume): start from scratch
            offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        _copy(response, part, mode, offset, total, url, progress)
    return total


def _copy(response, part: Path, mode: str, offset: int, total: int | None, url: str, progress: bool) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(
        total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
        desc=part.name.removesuffix(".part"), disable=not progress, leave=True,
    )  # fmt: skip
    with open(part, mode) as fh, bar:
        try:
            # A connection that closes early makes read() return b"" (http.client does not raise);
            # fetch() then sees the short size and keeps the .part file for a resume.
            while block := response.read(CHUNK_BYTES):
                fh.write(block)
                bar.update(len(block))
        except (OSError, http.client.HTTPException) as err:  # timeouts, resets, IncompleteRead
            raise DownloadError(
                f"{url}: connection lost after {fh.tell()} bytes ({err}); run again to resume"
            ) from err
        fh.flush()
        os.fsync(fh.fileno())


def _start_from_content_range(value: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-", value or "")
    return int(match.group(1)) if match else None


def _total_from_content_range(value: str | None) -> int | None:
    match = re.search(r"/(\d+)\s*$", value or "")
    return int(match.group(1)) if match else None
