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
