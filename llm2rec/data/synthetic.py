"""The built-in dataset: a SYNTHETIC shopping log, generated from a seed, needing no download.

Nothing here is real data. A seeded generator builds

* a **catalogue** of products and media with meaningful titles: brands, product lines with model numbers,
  categories and attributes (``"Korvel Aero X-112 Mirrorless Camera, Graphite, Travel Kit"``), and media
  series with numbered volumes (``"The Ember Gate Chronicles, Book 3: Ashes of Dawn (Paperback)"``);
* **users** whose sequences follow patterns that the titles reveal: series consumed in order (Book 1 →
  Book 2 → ...), complementary purchases along a department's chain (camera → lens → tripod → bag),
  brand loyalty, plus noise drawn from a Zipf-like popularity, so a few items are popular and many rare.

A model that reads titles can see that "Book 3" follows "Book 2" of the same series, or that a lens of the
same brand follows a camera, even for rare items whose ids it has barely seen; an ID-only model must learn
each such link from co-occurrence counts. That is the point: on this data a text-aware recommender should
beat ID-only embeddings, and the whole pipeline runs on a laptop CPU in minutes at the default size.

The generator is vectorised (numpy) across users: the default (3,000 users, 1,500 items, ~33k
interactions) takes well under a second, and ``generate(num_users=100_000, num_items=20_000)`` (~1.1M
interactions) a few seconds. The same seed gives the same output, byte for byte.

:func:`write_amazon2023_files` writes any :class:`~llm2rec.data.schema.RawLog` (by default this synthetic
one) as Amazon Reviews 2023 files (``<Category>.jsonl.gz`` and ``meta_<Category>.jsonl.gz``, fields and types
as in the dataset's documentation), for fixtures and benchmarks of the Amazon reader.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llm2rec.data.schema import RawLog

DEFAULT_NUM_USERS = 3000
DEFAULT_NUM_ITEMS = 1500

# Behaviour of simulated users (probabilities per step). Tuned so that roughly half of consecutive pairs
# follow a title-visible pattern and the rest is popularity noise.
P_CONTINUE_SERIES = 0.55  # when a started series has a next volume
P_COMPLEMENT = 0.45  # when the last product has a next category in its department's chain
P_SAME_BRAND_COMPLEMENT = 0.75  # the complement comes from the same brand
P_START_CHAIN = 0.15
P_LOYAL = 0.15  # any product of the user's favourite brand
SERIES_FRACTION = 0.35  # share of the catalogue that is media series volumes
ZIPF_EXPONENT = 0.9
MEAN_GAP_DAYS = 9.0
FIRST_DAY_MS = 1_451_606_400_000  # 2016-01-01 UTC
LAST_START_MS = 1_654_041_600_000  # 2022-06-01 UTC: sequences start before this, so they end before late 2023
MS_PER_DAY = 86_400_000


@dataclass(frozen=True)
class Department:
    """Products bought together: ``chain`` lists categories in the order people typically buy them."""

    top: str
    name: str
    chain: tuple[str, ...]
    lines: tuple[str, ...]
    colours: tuple[str, ...]
    variants: tuple[str, ...]


DEPARTMENTS = (
    Department(
        "Electronics", "Camera & Photo",
        ("Mirrorless Camera", "Standard Zoom Lens", "Telephoto Lens", "Carbon Fiber Tripod", "Camera Backpack", "SD Memory Card"),
        ("Aero", "Vista", "Lumen", "Pro"),
        ("Black", "Silver", "Graphite"),
        ("Travel Kit", "Compact", "Weather Sealed"),
    ),
    Department(
        "Home_and_Kitchen", "Coffee & Espresso",
        ("Espresso Machine", "Burr Coffee Grinder", "Milk Frothing Pitcher", "Whole Bean Coffee", "Descaling Solution"),
        ("Barista", "Crema", "Morning", "Classic"),
        ("Stainless Steel", "Matte Black", "Cream"),
        ("Compact", "Large", "Barista Edition"),
    ),
    Department(
        "Sports_and_Outdoors", "Camping & Hiking",
        ("Backpacking Tent", "Down Sleeping Bag", "Inflatable Sleeping Pad", "Camp Stove", "LED Headlamp"),
        ("Summit", "Trail", "Ridge", "Basecamp"),
        ("Forest Green", "Orange", "Slate Gray"),
        ("1-Person", "2-Person", "Ultralight"),
    ),
    Department(
        "Video_Games", "PC Gaming",
        ("Gaming Laptop", "Mechanical Keyboard", "Wireless Gaming Mouse", "XL Mouse Pad", "Gaming Headset"),
        ("Strike", "Phantom", "Nova", "Apex"),
        ("RGB Black", "Arctic White", "Midnight Blue"),
        ("Tenkeyless", "Full Size", "Pro Edition"),
    ),
    Department(
        "Sports_and_Outdoors", "Running",
        ("Running Shoes", "Cushioned Running Socks", "GPS Running Watch", "Hydration Vest", "Foam Roller"),
        ("Pace", "Stride", "Tempo", "Sprint"),
        ("Neon Yellow", "Black", "Ocean Blue"),
        ("Men's", "Women's", "Unisex"),
    ),
    Department(
        "Baby_Products", "Baby Gear",
        ("Convertible Car Seat", "Travel Stroller", "Diaper Bag Backpack", "Video Baby Monitor", "Silicone Teething Toy"),
        ("Cuddle", "Nest", "Little", "Snug"),
        ("Gray", "Navy", "Blush Pink"),
        ("Newborn", "Toddler", "All-in-One"),
    ),
    Department(
        "Arts_Crafts_and_Sewing", "Painting",
        ("Acrylic Paint Set", "Synthetic Paint Brushes", "Stretched Canvas", "Tabletop Easel", "Palette Knife Set"),
        ("Studio", "Artist", "Atelier", "Canvas"),
        ("Primary Colors", "Pastel", "Metallic"),
        ("12-Piece", "24-Piece", "Studio Size"),
    ),
    Department(
        "Musical_Instruments", "Guitar",
        ("Acoustic Guitar", "Phosphor Bronze Guitar Strings", "Clip-On Tuner", "Guitar Capo", "Padded Gig Bag"),
        ("Heritage", "Folk", "Stage", "Venue"),
        ("Natural", "Sunburst", "Black"),
        ("Dreadnought", "Concert", "3/4 Size"),
    ),
    Department(
        "Pet_Supplies", "Aquarium",
        ("Glass Aquarium Kit", "Aquarium Filter", "Submersible Heater", "Tropical Fish Flakes", "Water Conditioner"),
        ("Reef", "Lagoon", "Coral", "Tide"),
        ("Clear", "Black Frame", "White Frame"),
        ("10 Gallon", "20 Gallon", "29 Gallon"),
    ),
    Department(
        "Tools_and_Home_Improvement", "Power Tools",
        ("Cordless Drill Driver", "Lithium Battery Pack", "Drill Bit Set", "Impact Driver", "Contractor Tool Bag"),
        ("Torque", "Forge", "Titan", "Volt"),
        ("Yellow", "Red", "Blue"),
        ("20V", "12V", "Brushless"),
    ),
)  # fmt: skip

# Media series: a title template per kind; {name}, {k} (volume), {roman}, {subtitle}, {fmt}.
SERIES_KINDS = (
    ("Books", "Fantasy Novels", "The {name} Chronicles, Book {k}: {subtitle} ({fmt})", ("Paperback", "Hardcover", "Kindle Edition"), "Press"),
    ("Books", "Manga", "{name}, Vol. {k}: {subtitle} ({fmt})", ("Paperback", "Deluxe Edition"), "Comics"),
    ("Movies_and_TV", "TV Series", "{name}: The Complete Season {k} ({fmt})", ("Blu-ray", "DVD", "4K UHD"), "Studios"),
    ("Video_Games", "Console Games", "{name} {roman}: {subtitle} - {fmt}", ("PlayStation 5", "Xbox Series X", "Nintendo Switch"), "Games"),
)  # fmt: skip

SERIES_ADJECTIVES = (
    "Ember", "Crimson", "Silent", "Hollow", "Iron", "Star", "Frost", "Shadow", "Golden", "Thorn", "Storm",
    "Ashen", "Silver", "Winter", "Obsidian", "Wild", "Sunken", "Broken", "Emerald", "Midnight", "Copper",
    "Velvet", "Scarlet", "Distant", "Burning", "Quiet", "Lunar", "Salt", "Raven", "Glass",
)  # fmt: skip
SERIES_NOUNS = (
    "Gate", "Crown", "Harbor", "Vanguard", "Tide", "Throne", "Forest", "Sky", "Blade", "Compass", "Lantern",
    "Citadel", "River", "Garden", "Engine", "Orchard", "Signal", "Frontier", "Oath", "Archive", "Meridian",
    "Kingdom", "Voyage", "Spire", "Circuit", "Hearth", "Labyrinth", "Beacon", "Horizon", "Dominion",
)  # fmt: skip
SERIES_PLACES = (
    "Aldermoor", "Westreach", "Kharon", "Belvale", "Ostmark", "Duskfall", "Myrren", "Tamsin", "Corvel",
    "Ishara", "Northwatch", "Valdris", "Emberly", "Sorrowmere", "Highgarden", "Ravel", "Qadir", "Fenwick",
)  # fmt: skip
SUBTITLE_WORDS = (
    "Ashes of Dawn", "The Last Signal", "Return of the Tide", "A Crown of Thorns", "The Long Night",
    "Echoes Below", "The Silver Road", "Rise of the Vanguard", "Into the Storm", "The Broken Oath",
    "Fires of the North", "The Hidden Archive", "Beyond the Gate", "The Winter Court", "Blood and Salt",
    "The Glass Garden", "A Song of Engines", "The Far Shore", "Night of Ravens", "The Final Beacon",
)  # fmt: skip
BRAND_SYLLABLES = (
    "lu", "mo", "ra", "kes", "trel", "va", "no", "zen", "ta", "ri", "kor", "vel", "dar", "si", "on", "ex",
    "qua", "bel", "mir", "ga", "po", "lin", "sar", "tu", "ven", "hal", "cy", "dro", "fen", "ob",
)  # fmt: skip
ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")
ID_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # Amazon 2023 user ids look like base32
ASIN_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def describe(
    num_users: int = DEFAULT_NUM_USERS,
    num_items: int = DEFAULT_NUM_ITEMS,
    seed: int = 0,
    min_length: int = 5,
    max_length: int = 30,
) -> str:
    """A plain-language description of the built-in dataset, for the README and the manifest."""
    return (
        f"SYNTHETIC data (llm2rec built-in generator, seed {seed}): {num_users} simulated users and a catalogue "
        f"of {num_items} invented items across {len(DEPARTMENTS)} product departments and "
        f"{len(SERIES_KINDS)} kinds of media series. Titles name brands, product lines with model numbers, "
        "categories and attributes, or a series and its volume number. Users continue series in order "
        "(Book 1 -> Book 2 -> ...), buy complementary products along a department's chain (e.g. camera -> "
        "lens -> tripod -> bag), mostly from the same brand, stay loyal to a favourite brand, and otherwise "
        "pick items by a Zipf-like popularity. "
        f"Sequences have {min_length}-{max_length} events, timestamps in ms from 2016 on. "
        "No real users, products or reviews: use it to try the pipeline and to compare methods on a known "
        "structure; its numbers say nothing about real data."
    )


# ---------------------------------------------------------------------------------------------- catalogue


@dataclass
class Catalogue:
    """Parallel arrays over items 0..N-1 (internal indices; the RawLog uses ASIN-like keys)."""

    key: np.ndarray  # object: ASIN-like str
    title: list[str]
    brand_name: list[str]
    categories: list[str]  # "Top > Department > Category"
    description: list[str]
    brand: np.ndarray  # int, global brand id (series: publisher id)
    category: np.ndarray  # int, global category id
    chain_next: np.ndarray  # int, next category id in the department chain, -1 if none or a series item
    series_next: np.ndarray  # int, item index of the next volume, -1 if none or a product
    is_series_start: np.ndarray  # bool, volume 1 of a series
    popularity: np.ndarray  # float, Zipf-like weight
    first_category_of_dept: np.ndarray  # int per department
    brands_per_dept: int  # department d owns brand ids d*brands_per_dept .. (d+1)*brands_per_dept-1
    num_product_categories: int  # category ids below this are products, the rest media series kinds


def _brand_names(rng: np.random.Generator, count: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        parts = rng.choice(len(BRAND_SYLLABLES), size=int(rng.integers(2, 4)))
        name = "".join(BRAND_SYLLABLES[p] for p in parts).capitalize()
        if name not in seen and len(name) >= 4:
            seen.add(name)
            names.append(name)
    return names


def _series_names(rng: np.random.Generator, count: int) -> list[str]:
    pairs = [f"{a} {n}" for a in SERIES_ADJECTIVES for n in SERIES_NOUNS]
    names = [pairs[i] for i in rng.permutation(len(pairs))]
    if count > len(names):  # large catalogues: qualify with a place so names stay unique
        more = [f"{p} of {place}" for p in pairs for place in SERIES_PLACES]
        names += [more[i] for i in rng.permutation(len(more))]
    if count > len(names):
        raise ValueError(f"too many series requested ({count}); lower num_items")
    return names[:count]


def _unique_codes(
    rng: np.random.Generator, count: int, alphabet: bytes, width: int, prefix: str
) -> np.ndarray:
    """``count`` distinct random ids ``prefix + width chars``, deterministic for the rng state."""
    table = np.frombuffer(alphabet, dtype=np.uint8)
    codes = np.empty(0, dtype=object)
    while len(codes) < count:
        draw = table[rng.integers(0, len(table), size=(2 * count + 8, width))]
        fresh = np.char.add(prefix, draw.view(f"S{width}").ravel().astype(str)).astype(object)
        codes = pd.unique(np.concatenate([codes, fresh]))
    return codes[:count]


def _zipf_weights(rng: np.random.Generator, count: int) -> np.ndarray:
    ranks = rng.permutation(count)
    return 1.0 / (ranks + 1.0) ** ZIPF_EXPONENT


def build_catalogue(num_items: int, rng: np.random.Generator) -> Catalogue:
    """Invent ``num_items`` items: media series volumes and department products, with popularity."""
    n_series_items = int(round(num_items * SERIES_FRACTION))
    n_products = num_items - n_series_items
    per_dept = np.full(len(DEPARTMENTS), n_products // len(DEPARTMENTS))
    per_dept[: n_products % len(DEPARTMENTS)] += 1
    brands_per_dept = int(np.clip(round(np.sqrt(max(per_dept.max(), 1)) / 2), 3, 60))

    # Series lengths 3..8 until the series budget is used (the last one may be shorter).
    lengths: list[int] = []
    while sum(lengths) < n_series_items:
        lengths.append(min(int(rng.integers(3, 9)), n_series_items - sum(lengths)))
    n_publishers = max(1, len(SERIES_KINDS) * 3)
    brand_names = _brand_names(rng, len(DEPARTMENTS) * brands_per_dept + n_publishers)

    # One tuple per item: title, brand_name, categories, description, brand, category, chain_next, series_prev
    rows: list[tuple] = []
    first_category_of_dept = np.zeros(len(DEPARTMENTS), dtype=np.int64)
    category_id = 0
    for d, dept in enumerate(DEPARTMENTS):
        first_category_of_dept[d] = category_id
        brand_ids = list(range(d * brands_per_dept, (d + 1) * brands_per_dept))
        lines = {
            b: [dept.lines[i] for i in rng.choice(len(dept.lines), size=2, replace=False)] for b in brand_ids
        }
        model_counter = dict.fromkeys(brand_ids, 0)
        n_cats = len(dept.chain)
        for k in range(int(per_dept[d])):
            # Round-robin over (category, brand) so every brand sells every category of its chain.
            c, b = k % n_cats, brand_ids[(k // n_cats) % len(brand_ids)]
            model_counter[b] += 1
            line = lines[b][int(rng.integers(2))]
            model = f"{'XSZRT'[b % 5]}-{100 + 7 * model_counter[b]}"
            colour = dept.colours[int(rng.integers(len(dept.colours)))]
            variant = dept.variants[int(rng.integers(len(dept.variants)))]
            name = brand_names[b]
            title = f"{name} {line} {model} {dept.chain[c]}, {colour}, {variant}"
            desc = f"{dept.chain[c]} from the {name} {line} line, in {colour.lower()}."
            cats = f"{dept.top.replace('_', ' ')} > {dept.name} > {dept.chain[c]}"
            chain_next = category_id + c + 1 if c + 1 < n_cats else -1
            rows.append((title, name, cats, desc, b, category_id + c, chain_next, -1))
        category_id += n_cats

    series_names = _series_names(rng, len(lengths))
    publisher_base = len(DEPARTMENTS) * brands_per_dept
    for length, sname in zip(lengths, series_names, strict=True):
        kind = int(rng.integers(len(SERIES_KINDS)))
        top, kind_name, template, formats, suffix = SERIES_KINDS[kind]
        publisher = publisher_base + kind * 3 + int(rng.integers(3))
        pub_name = f"{brand_names[publisher]} {suffix}"
        fmt = formats[int(rng.integers(len(formats)))]
        for k in range(1, length + 1):
            subtitle = SUBTITLE_WORDS[int(rng.integers(len(SUBTITLE_WORDS)))]
            title = template.format(name=sname, k=k, roman=ROMAN[k - 1], subtitle=subtitle, fmt=fmt)
            desc = f"Part {k} of the {sname} series from {pub_name}."
            cats = f"{top.replace('_', ' ')} > {kind_name}"
            prev = len(rows) - 1 if k > 1 else -1
            rows.append((title, pub_name, cats, desc, publisher, category_id + kind, -1, prev))

    n = len(rows)
    series_prev = np.array([r[7] for r in rows], dtype=np.int64)
    series_next = np.full(n, -1, dtype=np.int64)
    has_prev = series_prev >= 0
    series_next[series_prev[has_prev]] = np.flatnonzero(has_prev)
    is_series = np.array([r[5] >= category_id for r in rows])
    popularity = _zipf_weights(rng, n)
    # Later volumes are read by fewer people: scale their standalone popularity down.
    vol = np.zeros(n)
    for i in np.flatnonzero(has_prev):
        vol[i] = vol[series_prev[i]] + 1
    popularity = popularity / (1.0 + vol)
    return Catalogue(
        key=_unique_codes(rng, n, ASIN_ALPHABET, 8, "B0"),
        title=[r[0] for r in rows],
        brand_name=[r[1] for r in rows],
        categories=[r[2] for r in rows],
        description=[r[3] for r in rows],
        brand=np.array([r[4] for r in rows], dtype=np.int64),
        category=np.array([r[5] for r in rows], dtype=np.int64),
        chain_next=np.array([r[6] for r in rows], dtype=np.int64),
        series_next=series_next,
        is_series_start=is_series & ~has_prev,
        popularity=popularity,
        first_category_of_dept=first_category_of_dept,
        brands_per_dept=brands_per_dept,
        num_product_categories=category_id,
    )


# ---------------------------------------------------------------------------------- grouped sampling


class GroupSampler:
    """Sample an item from a group (e.g. all items of brand b in category c), favouring popular ones.

    Items are stored grouped and, within a group, by popularity (descending); drawing index
    ``floor(size * u**2)`` picks popular members more often, without any per-group Python loop.
    """

    def __init__(self, group_of_item: np.ndarray, popularity: np.ndarray, num_groups: int):
        order = np.lexsort((-popularity, group_of_item))
        valid = group_of_item[order] >= 0
        self.items = order[valid]
        groups = group_of_item[self.items]
        self.size = np.bincount(groups, minlength=num_groups)
        self.start = np.concatenate([[0], np.cumsum(self.size)[:-1]])

    def sample(self, groups: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One item per entry of ``groups``; -1 where the group is empty or the id is negative."""
        safe = np.clip(groups, 0, len(self.size) - 1)
        size = np.where(groups >= 0, self.size[safe], 0)
        pick = self.start[safe] + np.minimum((size * u**2).astype(np.int64), np.maximum(size - 1, 0))
        return np.where(size > 0, self.items[np.minimum(pick, len(self.items) - 1)], -1)


def _weighted(rng_u: np.ndarray, weights: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Draw one of ``candidates`` per uniform in ``rng_u``, with probability proportional to ``weights``."""
    cdf = np.cumsum(weights[candidates])
    return candidates[np.minimum(np.searchsorted(cdf, rng_u * cdf[-1], side="right"), len(candidates) - 1)]


# ---------------------------------------------------------------------------------------------- users


def simulate_sequences(
    cat: Catalogue, num_users: int, rng: np.random.Generator, min_length: int, max_length: int
):
    """Return a (num_users, max_length) item matrix (-1 past each user's end) and the lengths."""
    n = len(cat.key)
    num_brands = int(cat.brand.max()) + 1
    num_categories = int(cat.category.max()) + 1
    product = cat.category < cat.num_product_categories
    by_brand_cat = GroupSampler(
        np.where(product, cat.brand * num_categories + cat.category, -1),
        cat.popularity,
        num_brands * num_categories,
    )
    by_category = GroupSampler(np.where(product, cat.category, -1), cat.popularity, num_categories)
    by_brand = GroupSampler(np.where(product, cat.brand, -1), cat.popularity, num_brands)
    everything = np.arange(n)
    series_starts = np.flatnonzero(cat.is_series_start)

    lengths = np.clip(min_length - 1 + rng.geometric(1 / 7, size=num_users), min_length, max_length)
    dept_popularity = _zipf_weights(rng, len(cat.first_category_of_dept))
    fav_dept = _weighted(rng.random(num_users), dept_popularity, np.arange(len(dept_popularity)))
    # A department's brands have contiguous ids (see build_catalogue).
    fav_brand = fav_dept * cat.brands_per_dept + rng.integers(0, cat.brands_per_dept, size=num_users)
    p_start_series = rng.uniform(0.05, 0.45, size=num_users)  # some users read/watch, others shop

    seq = np.full((num_users, max_length), -1, dtype=np.int64)
    pending_series = np.full(num_users, -1, dtype=np.int64)
    pending_category = np.full(num_users, -1, dtype=np.int64)
    pending_brand = np.full(num_users, -1, dtype=np.int64)
    for t in range(max_length):
        u = rng.random((9, num_users))
        noise = _weighted(u[0], cat.popularity, everything)
        start_series = _weighted(u[1], cat.popularity, series_starts)
        start_chain = by_brand_cat.sample(
            fav_brand * num_categories + cat.first_category_of_dept[fav_dept], u[2]
        )
        loyal = by_brand.sample(fav_brand, u[3])
        same_brand = u[4] < P_SAME_BRAND_COMPLEMENT
        complement = by_brand_cat.sample(
            np.where(same_brand, pending_brand * num_categories + pending_category, -1), u[5]
        )
        complement = np.where(complement >= 0, complement, by_category.sample(pending_category, u[5]))

        take_series = (pending_series >= 0) & (u[6] < P_CONTINUE_SERIES)
        take_complement = ~take_series & (pending_category >= 0) & (u[7] < P_COMPLEMENT)
        v = u[8]
        choice = np.where(v < p_start_series, start_series, noise)
        choice = np.where((v >= p_start_series) & (v < p_start_series + P_START_CHAIN), start_chain, choice)
        lo = p_start_series + P_START_CHAIN
        choice = np.where((v >= lo) & (v < lo + P_LOYAL), loyal, choice)
        choice = np.where(take_complement, complement, choice)
        choice = np.where(take_series, pending_series, choice)
        choice = np.where(choice >= 0, choice, noise)
        choice = _avoid_repeats(choice, seq[:, :t], cat.popularity, everything, rng)

        active = t < lengths
        seq[active, t] = choice[active]
        is_product = cat.category[choice] < cat.num_product_categories
        pending_series = np.where(active & ~is_product, cat.series_next[choice], pending_series)
        pending_category = np.where(active & is_product, cat.chain_next[choice], pending_category)
        pending_brand = np.where(active & is_product, cat.brand[choice], pending_brand)
    return seq, lengths


def _avoid_repeats(choice, history, popularity, everything, rng, tries: int = 3):
    """Redraw (from popularity) items the user already has; a rare leftover repeat is kept on purpose,
    as real logs have repeats too and the protocol keeps the earliest."""
    choice = choice.copy()
    rows = np.arange(len(choice))
    for _ in range(tries):
        rows = rows[(history[rows] == choice[rows, None]).any(axis=1)]
        # Always draw a full-size vector so the rng stream does not depend on how many rows repeat...
        u = rng.random(len(choice))
        # ...but only search for the rows that need it (searchsorted dominates the run time at 1M events).
        choice[rows] = _weighted(u[rows], popularity, everything)
    return choice


# ---------------------------------------------------------------------------------------------- public


def generate(
    num_users: int = DEFAULT_NUM_USERS,
    num_items: int = DEFAULT_NUM_ITEMS,
    seed: int = 0,
    *,
    min_length: int = 5,
    max_length: int = 30,
) -> RawLog:
    """Generate the built-in synthetic log (see the module docstring). Same arguments, same output.

    Returns a :class:`RawLog` with ``format="builtin"``, millisecond timestamps, ratings 1-5, and items
    with columns ``item`` (ASIN-like key), ``title``, ``brand``, ``categories`` (``"A > B > C"``) and
    ``description``. Every item appears in the catalogue; a rarely drawn one may have no interaction.
    """
    if num_users < 1 or num_items < 2 * len(DEPARTMENTS) * 5:
        raise ValueError(f"need num_users >= 1 and num_items >= {2 * len(DEPARTMENTS) * 5}")
    if not 1 <= min_length <= max_length:
        raise ValueError("need 1 <= min_length <= max_length")
    rng = np.random.default_rng(seed)
    cat = build_catalogue(num_items, rng)
    seq, lengths = simulate_sequences(cat, num_users, rng, min_length, max_length)

    mask = np.arange(max_length)[None, :] < lengths[:, None]
    gaps = 60_000 + (rng.exponential(MEAN_GAP_DAYS, size=seq.shape) * MS_PER_DAY).astype(np.int64)
    start = rng.integers(FIRST_DAY_MS, LAST_START_MS, size=num_users)
    timestamps = start[:, None] + np.cumsum(gaps, axis=1)
    ratings = rng.choice(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), p=[0.05, 0.05, 0.1, 0.3, 0.5], size=seq.shape)
    user_keys = _unique_codes(rng, num_users, ID_ALPHABET, 27, "A")

    interactions = pd.DataFrame(
        {
            "user": user_keys[np.repeat(np.arange(num_users), lengths)],
            "item": cat.key[seq[mask]],
            "timestamp": timestamps[mask].astype(np.int64),
            "rating": ratings[mask].astype(np.float64),
        }
    )
    items = pd.DataFrame(
        {
            "item": cat.key,
            "title": cat.title,
            "brand": cat.brand_name,
            "categories": cat.categories,
            "description": cat.description,
        }
    )
    notes = {
        "synthetic": True,
        "generator": "llm2rec.data.synthetic",
        "seed": seed,
        "num_users": num_users,
        "num_items": num_items,
        "description": describe(num_users, num_items, seed, min_length, max_length),
    }
    return RawLog(
        interactions=interactions, items=items, source_files=[], format="builtin", has_time=True, notes=notes
    )


# ------------------------------------------------------------------------------- Amazon 2023 files

REVIEW_TEXTS = {
    1.0: ("Disappointed", "Stopped working after a week. Would not buy again."),
    2.0: ("Not great", "Does the job but feels cheap for the price."),
    3.0: ("It's okay", "Average quality, nothing special."),
    4.0: ("Pretty good", "Works well, a few minor quirks."),
    5.0: ("Love it", "Exactly as described, highly recommend."),
}


def write_amazon2023_files(
    raw: RawLog | None, out_dir: str | Path, category: str = "Synthetic", *, compresslevel: int = 1
) -> tuple[Path, Path]:
    """Write ``raw`` (default: :func:`generate`) as Amazon Reviews 2023 ``<category>.jsonl.gz`` and
    ``meta_<category>.jsonl.gz`` in ``out_dir``; return (reviews path, meta path).

    One review per interaction, one meta record per item, with the field names and JSON types of the
    released files (reviews: rating, title, text, images, asin, parent_asin, user_id, timestamp in ms,
    helpful_vote, verified_purchase; meta: main_category, title, average_rating, rating_number, features,
    description, price, images, videos, store, categories, details, parent_asin, bought_together).
    Each file is written atomically; the gzip header carries no time, so output bytes are reproducible.
    """
    raw = generate() if raw is None else raw
    out_dir = Path(out_dir)
    reviews = out_dir / f"{category}.jsonl.gz"
    meta = out_dir / f"meta_{category}.jsonl.gz"
    _write_gzip_lines(reviews, _review_lines(raw.interactions), compresslevel)
    _write_gzip_lines(meta, _meta_lines(raw, category), compresslevel)
    return reviews, meta


def _review_lines(inter: pd.DataFrame) -> list[str]:
    # Build JSON by concatenating pre-encoded fragments: json.dumps per row is too slow for 1M rows.
    rng = np.random.default_rng(len(inter))
    rating = inter["rating"].to_numpy(dtype=np.float64)
    known = np.where(np.isnan(rating), 5.0, np.clip(np.round(rating), 1.0, 5.0))
    head = {  # everything up to the asin value, i.e. the JSON object without its closing brace
        r: json.dumps({"rating": r, "title": t, "text": x, "images": []})[:-1] + ', "asin": '
        for r, (t, x) in REVIEW_TEXTS.items()
    }
    item_codes, item_keys = pd.factorize(inter["item"])
    user_codes, user_keys = pd.factorize(inter["user"])
    item_json = [json.dumps(str(k)) for k in item_keys]
    user_json = [json.dumps(str(k)) for k in user_keys]
    votes = rng.geometric(0.7, size=len(inter)) - 1
    verified = rng.random(len(inter)) < 0.9
    timestamps = inter["timestamp"].to_numpy(dtype=np.int64)
    return [
        f'{head[r]}{item_json[i]}, "parent_asin": {item_json[i]}, "user_id": {user_json[u]}, '
        f'"timestamp": {ts}, "helpful_vote": {v}, "verified_purchase": {"true" if ok else "false"}}}'
        for r, i, u, ts, v, ok in zip(
            known.tolist(), item_codes.tolist(), user_codes.tolist(), timestamps.tolist(), votes.tolist(),
            verified.tolist(), strict=True,
        )
    ]  # fmt: skip


def _meta_lines(raw: RawLog, category: str) -> list[str]:
    items = raw.items
    stats = raw.interactions.groupby("item")["rating"].agg(["mean", "count"])
    rng = np.random.default_rng(len(items))
    prices = np.round(rng.lognormal(3.2, 0.8, size=len(items)), 2)
    has_price = rng.random(len(items)) < 0.85  # real meta often lacks a price
    main_category = category.replace("_", " ")
    lines = []
    for i, row in enumerate(items.itertuples(index=False)):
        key = str(row.item)
        mean, count = stats.loc[key] if key in stats.index else (np.nan, 0)
        store = str(getattr(row, "brand", "") or "")
        cats = [c for c in str(getattr(row, "categories", "") or "").split(" > ") if c]
        desc = str(getattr(row, "description", "") or "")
        record = {
            "main_category": main_category,
            "title": str(row.title),
            "average_rating": round(float(mean), 1) if count and not np.isnan(mean) else 0.0,
            "rating_number": int(count),
            "features": [f"Brand: {store}"] if store else [],
            "description": [desc] if desc else [],
            "price": float(prices[i]) if has_price[i] else None,
            "images": [],
            "videos": [],
            "store": store,
            "categories": cats,
            "details": {"Brand": store, "Item model number": key} if store else {"Item model number": key},
            "parent_asin": key,
            "bought_together": None,
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    return lines


def _write_gzip_lines(path: Path, lines: list[str], compresslevel: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            # filename="" and mtime=0 keep the gzip header free of names and times: reproducible bytes.
            with gzip.GzipFile(
                filename="", mode="wb", fileobj=fh, compresslevel=compresslevel, mtime=0
            ) as gz:
                chunk = 100_000
                for start in range(0, len(lines), chunk):
                    gz.write(("\n".join(lines[start : start + chunk]) + "\n").encode("utf-8"))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
