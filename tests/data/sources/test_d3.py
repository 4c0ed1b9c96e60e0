import csv
import json

import pytest

from llm2rec.data.sources import read_source
from llm2rec.errors import ConfigError, DataFormatError

TITLES = {0: "Glue", 1: "Tape, Clear", 2: "Gloves 'Nitrile'", 3: 'Beaker "500 ml"', 4: "Scale"}


def _rows_for(user, items, max_history=10):
    """Sliding-window D3 rows: previous <= max_history items → next item."""
    return [(user, items[max(0, i - max_history) : i], items[i]) for i in range(1, len(items))]


def write_minionerec(folder, rows, name="Ind_5_2016-10-2018-11"):
    """MiniOneRec columns (no time, no ASIN)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(
            [
                "user_id",
                "history_item_title",
                "item_title",
                "history_item_id",
                "item_id",
                "history_item_sid",
                "item_sid",
            ]
        )
        for user, history, target in rows:
            out.writerow(
                [
                    user,
                    str([TITLES[i] for i in history]),
                    TITLES[target],
                    str(history),
                    target,
                    str(["<a_1>"] * len(history)),
                    "<a_1>",
                ]
            )
    return path


def write_r3(folder, rows, times):
    """R3 columns: ASINs, ratings, per-item Unix timestamps in seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "CDs_5.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(
            [
                "user_id",
                "item_asins",
                "item_asin",
                "history_item_id",
                "item_id",
                "history_item_title",
                "item_title",
                "history_rating",
                "rating",
                "history_timestamp",
                "timestamp",
            ]
        )
        for user, history, target in rows:
            out.writerow(
                [
                    user,
                    str([f"B{i:09d}" for i in history]),
                    f"B{target:09d}",
                    str(history),
                    target,
                    str([TITLES[i] for i in history]),
                    TITLES[target],
                    str([4.0] * len(history)),
                    5.0,
                    str([times[i] for i in history]),
                    times[target],
                ]
            )
    return path


def test_minionerec_rows_rebuild_sequences_across_files(tmp_path):
    # u1 = 0 1 2 3 4 (window 2), u2 = 3 0; valid holds the first rows, test the later ones
    rows = _rows_for("A1", [0, 1, 2, 3, 4], max_history=2) + _rows_for("A2", [3, 0])
    valid = write_minionerec(tmp_path / "valid", rows[:2])
    test = write_minionerec(tmp_path / "test", rows[2:])
    log = read_source("d3", [valid, test], use_shipped_split=True)
    df = log.interactions
    assert df.user.tolist() == ["A1"] * 5 + ["A2"] * 2
    assert df.item.tolist() == ["0", "1", "2", "3", "4", "3", "0"]
    assert df.timestamp.tolist() == [0, 1, 2, 3, 4, 0, 1] and not log.has_time
    assert log.presplit.tolist() == ["train", "valid", "valid", "test", "test", "train", "test"]
    assert log.notes["history_disagreements"] == 0
    assert log.items.set_index("item")["title"].to_dict() == {str(k): v for k, v in TITLES.items()}


def test_r3_keys_by_asin_and_converts_seconds(tmp_path):
    times = {0: 1504656000, 1: 1504656000, 2: 1504742400, 3: 1505000000, 4: 1506000000}
    path = write_r3(tmp_path, _rows_for("U", [0, 1, 2, 3]), times)
    log = read_source("d3", [path])
    df = log.interactions
    assert df.item.tolist() == ["B000000000", "B000000001", "B000000002", "B000000003"]
    assert df.timestamp.tolist() == [times[i] * 1000 for i in range(4)] and log.has_time
    assert df.rating.tolist() == [4.0, 5.0, 5.0, 5.0]  # history ratings for items seen only in history
    assert log.notes["timestamps_converted_from_seconds"] == 4


def test_info_and_index_files_complete_titles(tmp_path):
    path = write_minionerec(tmp_path / "valid", _rows_for("A1", [0, 1, 2]))
    path.write_text(path.read_text().replace("Gloves 'Nitrile'", ""))  # target title of item 2 missing
    (tmp_path / "info").mkdir()
    (tmp_path / "info" / "Ind_5_2016-10-2018-11.txt").write_text(
        "<a_1>\tGloves from info\t2\n<a_2>\tUnused\t9\n"
    )
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "Ind.item.json").write_text(
        json.dumps(
            {
                "0": {
                    "title": "Other glue",
                    "description": "['Strong.', 'Fast.']",
                    "brand": "Gorilla",
                    "categories": "",
                }
            }
        )
    )
    log = read_source("d3", [tmp_path])
    items = log.items.set_index("item")
    assert items.loc["2", "title"] == "Gloves from info"
    assert items.loc["0", "title"] == "Glue"  # the CSV's own title wins; the other one is counted
    assert log.notes["title_disagreements"] == 1
    assert items.loc["0", "description"] == "Strong. Fast." and items.loc["0", "brand"] == "Gorilla"


def test_disagreeing_history_is_counted(tmp_path):
    rows = _rows_for("A1", [0, 1, 2, 3])
    rows[2] = ("A1", [0, 4, 2], 3)  # claims 4 came second
    log = read_source("d3", [write_minionerec(tmp_path, rows)])
    assert log.notes["history_disagreements"] == 1


@pytest.mark.parametrize(
    ("history", "problem"),
    [
        ("[0, 1", "bad row"),
        ("__import__('os')", "bad row"),
        ("{'a': 1}", "expected a list"),
        ("[0, [1]]", "key"),
    ],
)
def test_malformed_literal(tmp_path, history, problem):
    path = write_minionerec(tmp_path, _rows_for("A1", [0, 1, 2, 3]))
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace(",[0],", f',"{history}",')  # the first row's history_item_id
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=problem) as err:
        read_source("d3", [path])
    assert err.value.line == 2
    log = read_source("d3", [path], skip_bad_lines=True)
    assert log.bad_lines.to_dict()["total"] == 1 and len(log.interactions) == 4


def test_missing_columns_and_misaligned_lists(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("user,history_item_id,item_id\nA,[1],2\n")
    with pytest.raises(DataFormatError, match=r"missing column\(s\) \['user_id'\].*found \['user'"):
        read_source("d3", [path])
    path.write_text("user_id,history_item_id,item_id,history_item_title\nA,\"[1, 2]\",3,['x']\n")
    with pytest.raises(DataFormatError, match="1 values for 2 history items"):
        read_source("d3", [path])


def test_folder_with_several_datasets_needs_a_name(tmp_path):
    write_minionerec(tmp_path / "valid", _rows_for("A1", [0, 1]), name="Ind_5")
    write_minionerec(tmp_path / "valid", _rows_for("A1", [2, 3]), name="Off_5")
    with pytest.raises(ConfigError, match="several datasets"):
        read_source("d3", [tmp_path])
    assert read_source("d3", [tmp_path], name="Off").interactions.item.tolist() == ["2", "3"]


def test_real_minionerec_industrial(shared_data):
    folder = shared_data / "minionerec_amazon18"
    name = "Industrial_and_Scientific_5_2016-10-2018-11.csv"
    log = read_source(
        "d3",
        [
            folder / "valid" / name,
            folder / "test" / name,
            folder / "info" / name.replace(".csv", ".txt"),
            folder / "index" / "Industrial_and_Scientific.item.json",
        ],
        use_shipped_split=True,
    )
    df = log.interactions
    assert log.notes["csv_rows"] == 4532 + 4533
    assert log.notes["history_disagreements"] == 0 and log.notes["title_disagreements"] == 0
    assert log.presplit.value_counts()[["valid", "test"]].tolist() == [4532, 4533]
    assert df.item.nunique() <= 3686 and (log.items.title != "").all()
    assert "description" in log.items.columns


def test_real_r3_cds(shared_data):
    log = read_source("d3", [shared_data / "r3_cds_vinyl_2018"])
    df = log.interactions
    assert log.notes["csv_rows"] == 6156 + 6157 and log.has_time
    assert df.user.nunique() == len(set(df.user)) and df.item.str.len().eq(10).all()
    # per user, rebuilt timestamps never go backwards (files read valid then test)
    assert df.groupby("user", sort=False)["timestamp"].apply(lambda s: s.is_monotonic_increasing).all()
    assert log.notes["history_disagreements"] == 0
    assert (log.items.title.str.startswith("<span")).sum() > 0  # raw titles; the protocol cleans them


def test_gap_keeps_split_labels_in_order(tmp_path):
    valid = write_minionerec(tmp_path / "valid", [("A1", [0], 1)])
    test = write_minionerec(tmp_path / "test", [("A1", [2, 3], 4)])  # items 2, 3 never seen before: a gap
    log = read_source("d3", [valid, test], use_shipped_split=True)
    assert log.interactions.item.tolist() == ["0", "1", "2", "3", "4"]
    assert log.presplit.tolist() == ["train", "valid", "valid", "valid", "test"]
    assert log.notes["history_disagreements"] == 1


def test_split_in_file_names(tmp_path):
    write_minionerec(tmp_path, [("A1", [0], 1)], name="Ind.valid")
    write_minionerec(tmp_path, [("A1", [0, 1], 2)], name="Ind.test")
    write_minionerec(tmp_path, [("A1", [], 0)], name="Ind.train")
    log = read_source("d3", [tmp_path], use_shipped_split=True)
    assert log.interactions.item.tolist() == ["0", "1", "2"]  # train, valid, test files read in that order
    assert log.presplit.tolist() == ["train", "valid", "test"]
