import pytest

from llm2rec.train.title_match import TitleIndex, token_f1, words


def test_words_are_lower_cased_word_sets():
    assert words("Blue PLA, 1.75 mm; blue") == {"blue", "pla", "1", "75", "mm"}


def test_token_f1():
    assert token_f1("red pen", "red pen") == 1.0
    assert token_f1("", "red pen") == 0.0
    assert token_f1("red pen set", "red pen") == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))


def test_nearest_title_by_word_jaccard():
    cat = TitleIndex(["Red Pen", "Red Pen Set of 10", "Blue Pencil", " Red Pen "])
    assert len(cat.titles) == 3 and "Red Pen" in cat and "red pen" not in cat
    assert cat.nearest("red pen") == "Red Pen"
    assert cat.nearest("pen set of ten") == "Red Pen Set of 10"
    assert cat.nearest("pencil blue box") == "Blue Pencil"
    assert cat.nearest("stapler") is None and cat.nearest("") is None
