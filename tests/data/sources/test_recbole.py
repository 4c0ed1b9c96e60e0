import pytest

from llm2rec.data.sources import read_source
from llm2rec.data.sources.recbole import split_unisrec_text
from llm2rec.errors import ConfigError, DataFormatError
from tests.data.sources.fixtures import write_lines

# UniSRec layout: user 0 = items [0, 1, 2, 3, 4] (indices into .item2index), user 1 = [2, 0, 5].
SEQ_FILES = {
    "Toy.train.inter": [
        "user_id:token\titem_id_list:token_seq\titem_id:token",
        "0\t0 1\t2",
        "0\t0\t1",
        "1\t2\t0",
    ],
    "Toy.valid.inter": ["user_id:token\titem_id_list:token_seq\titem_id:token", "0\t0 1 2\t3", "1\t2 0\t5"],
    "Toy.test.inter": ["user_id:token\titem_id_list:token_seq\titem_id:token", "0\t0 1 2 3\t4"],
    "Toy.item2index": ["B0A\t0", "B0B\t1", "B0C\t2", "B0D\t3", "B0E\t4", "B0F\t5"],
    "Toy.user2index": ["AUSER0\t0", "AUSER1\t1"],
    "Toy.text": ["item_id:token\ttext:token_seq"]
    + [
        f"B0{c}\t{title}. Industrial & Scientific Lab Supplies. {brand}. "
        for c, title, brand in [
            ("A", "24 Oz. Sprayer Bottles, Pack Of 3", "Continental"),
            ("B", "Gorilla Glue", "Gorilla"),
            ("C", "Angel TENS Pads 2x2 in. Reusable", "K.S. Choi Corp"),
            ("D", "Tape", "3M"),
            ("E", "Gloves", "Ansell"),
            ("F", "Beaker", "Pyrex"),
        ]
    ],
}


def _write(tmp_path, files):
    for name, lines in files.items():
        write_lines(tmp_path / name, lines)
    return tmp_path


def test_sequence_rows_rebuild_full_sequences(tmp_path):
    log = read_source("recbole", [_write(tmp_path, SEQ_FILES)], use_shipped_split=True)
    df = log.interactions
    assert df.user.tolist() == ["AUSER0"] * 5 + ["AUSER1"] * 3
    assert df.item.tolist() == ["B0A", "B0B", "B0C", "B0D", "B0E", "B0C", "B0A", "B0F"]
    assert df.timestamp.tolist() == [0, 1, 2, 3, 4, 0, 1, 2] and not log.has_time
    assert log.presplit.tolist() == ["train", "train", "train", "valid", "test", "train", "train", "valid"]
    assert log.notes["history_conflicts"] == 0
    titles = log.items.set_index("item")["title"]
    assert titles["B0A"] == "24 Oz. Sprayer Bottles, Pack Of 3"
    assert titles["B0C"] == "Angel TENS Pads 2x2 in. Reusable"
    assert log.items.set_index("item").loc["B0C", "brand"] == "K.S. Choi Corp"


def test_sequence_conflict_is_counted(tmp_path):
    files = dict(SEQ_FILES)
    files["Toy.test.inter"] = [files["Toy.test.inter"][0], "0\t0 1 5 3\t4"]  # 5 is not the user's 3rd item
    log = read_source("recbole", [_write(tmp_path, files)])
    assert log.notes["history_conflicts"] == 1 and log.presplit is None


def test_split_unisrec_text_without_common_category_start():
    out = split_unisrec_text({"a": "Title. Cats. Brand. ", "b": "Only a title"})
    assert out["title"] == {"a": "Title", "b": "Only a title"}
    assert out["brand"]["a"] == "Brand"


def test_interaction_rows_with_item_file(tmp_path):
    _write(
        tmp_path,
        {
            "ml.inter": [
                "user_id:token\titem_id:token\trating:float\ttimestamp:float",
                "1\t10\t5\t978300760",
                "1\t20\t3\t978302109",
                "2\t10\t4\t978301968",
            ],
            "ml.item": [
                "item_id:token\tmovie_title:token_seq\trelease_year:token",
                "10\tOne Flew Over the Cuckoo's Nest\t1975",
                "20\tJames and the Giant Peach\t1996",
            ],
        },
    )
    log = read_source("recbole", [tmp_path])
    df = log.interactions
    assert df.values.tolist() == [
        ["1", "10", 978300760000, 5.0],
        ["1", "20", 978302109000, 3.0],
        ["2", "10", 978301968000, 4.0],
    ]
    assert log.has_time and log.notes["timestamps_converted_from_seconds"] == 3
    assert log.items.set_index("item")["title"]["20"] == "James and the Giant Peach"


def test_interaction_rows_without_time_get_ordinals(tmp_path):
    _write(
        tmp_path,
        {
            "x.inter": ["user_id:token\titem_id:token", "u\ta", "u\tb", "v\ta"],
            "x.item": ["item_id:token\ttitle:token_seq", "a\tA", "b\tB"],
        },
    )
    log = read_source("recbole", [tmp_path])
    assert log.interactions.timestamp.tolist() == [0, 1, 0] and not log.has_time


def test_bad_rows_and_files(tmp_path):
    files = dict(SEQ_FILES)
    files["Toy.valid.inter"] = files["Toy.valid.inter"] + ["0\t0 1 2", "1\t0 1\t99"]
    _write(tmp_path, files)
    with pytest.raises(DataFormatError, match=r"Toy.valid.inter:4: expected 3 tab-separated fields"):
        read_source("recbole", [tmp_path])
    log = read_source("recbole", [tmp_path], skip_bad_lines=True)
    assert log.bad_lines.to_dict()["total"] == 2  # the short row and the unknown item index 99
    assert "not in the .item2index" in " ".join(log.bad_lines.examples)


def test_missing_titles_and_fields(tmp_path):
    _write(tmp_path, {"x.inter": ["user_id:token\titem_id:token", "u\ta"]})
    with pytest.raises(DataFormatError, match="no titles"):
        read_source("recbole", [tmp_path])
    _write(
        tmp_path,
        {"x.inter": ["uid:token\titem_id:token", "u\ta"], "x.item": ["item_id:token\ttitle", "a\tA"]},
    )
    with pytest.raises(DataFormatError, match="missing field 'user_id'"):
        read_source("recbole", [tmp_path])
    log = read_source("recbole", [tmp_path], user_field="uid")
    assert log.interactions.user.tolist() == ["u"]


def test_several_datasets_and_options(tmp_path):
    _write(
        tmp_path,
        {
            "a.inter": ["user_id:token\titem_id:token", "u\ta"],
            "b.inter": ["user_id:token\titem_id:token", "u\ta"],
        },
    )
    with pytest.raises(ConfigError, match="several datasets"):
        read_source("recbole", [tmp_path])
    (tmp_path / "b.item").write_text("item_id:token\ttitle:token_seq\na\tA\n")
    assert read_source("recbole", [tmp_path], name="b").items.title.tolist() == ["A"]
    with pytest.raises(ConfigError, match="no option"):
        read_source("recbole", [tmp_path], colour="red")
    with pytest.raises(ConfigError, match="holds no split"):
        read_source("recbole", [tmp_path / "a.inter"], use_shipped_split=True)


def test_real_unisrec_scientific(shared_data):
    log = read_source("recbole", [shared_data / "unisrec_scientific_subset_2018"], use_shipped_split=True)
    df = log.interactions
    assert df.user.nunique() == 2928 and df.item.nunique() == 1585
    assert log.notes["history_conflicts"] == 0
    counts = log.presplit.value_counts()
    assert counts["valid"] == 2928 and counts["test"] == 2928
    # the test target is each user's last item
    assert (log.presplit.groupby(df.user.to_numpy()).last() == "test").all()
    titles = log.items.set_index("item")["title"]
    assert (titles != "").all() and len(titles) == 1585
    assert titles["B00008VXNE"] == "24 Oz. Sprayer Bottles, Pack Of 3"
    assert df.item.str.match(r"^[0-9A-Z]{10}$").all()  # ASINs, not indices
