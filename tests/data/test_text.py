import pytest

from llm2rec.data.text import clean_title


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Yes to Tomatoes Cleanser &amp; Mask", "Yes to Tomatoes Cleanser & Mask"),
        ("Tom &amp;amp; Jerry", "Tom & Jerry"),  # double-escaped in scraped metadata
        ("<b>Bold</b>   Title\n\twith  spaces ", "Bold Title with spaces"),
        ("Caf&eacute; &#8211; Live", "Café – Live"),
        ('<span class="a-size-medium a-color-secondary a-text-normal', ""),  # r3_cds_vinyl junk
        ('<span class="a-size-medium">', ""),
        ("&lt;div&gt;", ""),
        ("   ", ""),
        ("", ""),
        ("24 Oz. Sprayer Bottles, Pack Of 3", "24 Oz. Sprayer Bottles, Pack Of 3"),
        ("Love <3 Forever", "Love <3 Forever"),  # not a tag
        ("Live <Deluxe Edition>", "Live <Deluxe Edition>"),  # not an HTML tag name
        ("A<br/>B", "A B"),
    ],
)
def test_clean_title(raw, clean):
    assert clean_title(raw) == clean


def test_clean_title_non_string_is_empty():
    assert clean_title(None) == ""  # type: ignore[arg-type]


def test_clean_title_r3_junk_titles_all_empty(shared_data):
    info = shared_data / "r3_cds_vinyl_2018" / "info" / "CDs_and_Vinyl_5_2015-10-2018-11.txt"
    titles = [line.rsplit("\t", 1)[0] for line in info.read_text(encoding="utf-8").splitlines()]
    cleaned = [clean_title(t) for t in titles]
    assert len(titles) == 5841
    assert sum(1 for t in cleaned if t == "") == 29  # SOURCE.md: 29 titles are HTML junk
    assert all("<span" not in t and "&amp;" not in t for t in cleaned)


def test_a_run_of_spaces_after_a_bracket_is_cleaned_fast_and_exactly():
    # "<" followed by spaces made the tag pattern backtrack quadratically (8,000 spaces: 27 s)
    assert clean_title("<" + " " * 5000 + "x") == "< x"
    assert clean_title("< / b >bold") == "bold"


def test_control_characters_and_terminal_escapes_are_removed():
    assert clean_title("\x00\x07Red\x1b[31m Pen\x7f\x9b ") == "Red Pen"
    assert clean_title("\x00\x00\x00") == ""  # three NULs are not a title


def test_titles_are_capped_at_a_word_boundary():
    from llm2rec.data.text import MAX_TITLE_CHARS

    long = " ".join(["word"] * 1000)
    capped = clean_title(long)
    assert len(capped) <= MAX_TITLE_CHARS and capped.endswith("word") and len(capped) > MAX_TITLE_CHARS - 6
    assert len(clean_title("x" * 5000)) == MAX_TITLE_CHARS  # no space to cut at


def test_cut_titles_are_counted_in_the_manifest(tmp_path):
    import pandas as pd

    from llm2rec.data.protocol import ProtocolSettings, prepare
    from llm2rec.data.schema import RawLog

    inter = pd.DataFrame({"user": ["u"] * 3, "item": ["a", "b", "c"], "timestamp": [1, 2, 3], "rating": 5.0})
    items = pd.DataFrame({"item": ["a", "b", "c"], "title": ["A", "B " * 2000, "C"]})
    raw = RawLog(inter, items, source_files=[], format="test", has_time=True)
    ds = prepare(raw, tmp_path / "ds", ProtocolSettings(kcore=0))
    assert ds.manifest["dropped"]["titles_truncated"] == 1
