"""The built-in generator's invented catalogue: departments of products along purchase chains, media series
with numbered volumes, brands, titles and a Zipf-like popularity (see :mod:`llm2rec.data.synthetic`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SERIES_FRACTION = 0.35  # share of the catalogue that is media series volumes
ZIPF_EXPONENT = 0.9


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


@dataclass
class SyntheticCatalogue:
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


def unique_codes(
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


def zipf_weights(rng: np.random.Generator, count: int) -> np.ndarray:
    ranks = rng.permutation(count)
    return 1.0 / (ranks + 1.0) ** ZIPF_EXPONENT


def _product_rows(rng, per_dept: np.ndarray, brands_per_dept: int, brand_names: list[str]):
    """One row per department product (brand × category round-robin); returns the rows, each
    department's first category id and the number of product categories."""
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

    return rows, first_category_of_dept, category_id


def _add_series_rows(
    rows: list, rng, lengths: list[int], brand_names: list[str], publisher_base: int, category_id: int
) -> None:
    """Append the media series volumes (``lengths[s]`` volumes of series s), each linked to the previous."""
    series_names = _series_names(rng, len(lengths))
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


def build_catalogue(num_items: int, rng: np.random.Generator) -> SyntheticCatalogue:
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
    rows, first_category_of_dept, category_id = _product_rows(rng, per_dept, brands_per_dept, brand_names)
    _add_series_rows(rows, rng, lengths, brand_names, len(DEPARTMENTS) * brands_per_dept, category_id)

    n = len(rows)
    series_prev = np.array([r[7] for r in rows], dtype=np.int64)
    series_next = np.full(n, -1, dtype=np.int64)
    has_prev = series_prev >= 0
    series_next[series_prev[has_prev]] = np.flatnonzero(has_prev)
    is_series = np.array([r[5] >= category_id for r in rows])
    popularity = zipf_weights(rng, n)
    # Later volumes are read by fewer people: scale their standalone popularity down.
    vol = np.zeros(n)
    for i in np.flatnonzero(has_prev):
        vol[i] = vol[series_prev[i]] + 1
    popularity = popularity / (1.0 + vol)
    return SyntheticCatalogue(
        key=unique_codes(rng, n, ASIN_ALPHABET, 8, "B0"),
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
