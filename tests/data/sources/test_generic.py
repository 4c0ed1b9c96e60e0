import json

import pandas as pd
import pytest

from llm2rec.data.sources import read_source
from llm2rec.errors import ConfigError, DataFormatError

EVENTS = pd.DataFrame(
    {
        "user_id": ["u1", "u1", "u2"],
        "item_id": ["a", "b", "a"],
        "timestamp": [1588687728923, 1588687729923, 1600000000000],
        "stars": [5.0, 4.0, 3.0],
    }
)
ITEMS = pd.DataFrame(
    {"item_id": ["a", "b", "c"], "title": ["Alpha &amp; Co", "Beta", "Gamma"], "brand": ["X", "Y", "Z"]}
)


@pytest.mark.parametrize("kind", ["csv", "tsv.gz", "parquet"])
def test_reads_tables(tmp_path, kind):
    events, items = tmp_path / f"events.{kind}", tmp_path / f"items.{kind}"
    if kind == "parquet":
        EVENTS.to_parquet(events)
        ITEMS.to_parquet(items)
    else:
        EVENTS.to_csv(events, sep="\t" if "tsv" in kind else ",", index=False)
        ITEMS.to_csv(items, sep="\t" if "tsv" in kind else ",", index=False)
    log = read_source("generic", [events, items], rating_col="stars")
    assert log.interactions.values.tolist() == [list(r) for r in EVENTS.itertuples(index=False)]
    assert log.items.to_dict("list") == {
        "item": ["a", "b"],
        "title": ["Alpha &amp; Co", "Beta"],
        "brand": ["X", "Y"],
    }
    assert log.has_time and log.format == "generic"


def test_jsonl_items_custom_columns_and_seconds(tmp_path):
    events = tmp_path / "log.csv"
    events.write_text("who,what,when\nu1,7,1588687728\nu1,8,1588687800\n")
    items = tmp_path / "catalogue.jsonl"
    items.write_text(
        "\n".join(json.dumps({"what": i, "name": f"Item {i}", "description": ["d", str(i)]}) for i in (7, 8))
        + "\n"
    )
    log = read_source(
        "generic",
        [tmp_path],
        user_col="who",
        item_col="what",
        time_col="when",
        title_col="name",
        items_path=str(items),
    )
    assert log.interactions.timestamp.tolist() == [1588687728000, 1588687800000]
    assert log.notes["timestamps_converted_from_seconds"] == 2
    assert log.items.to_dict("list") == {
        "item": ["7", "8"],
        "title": ["Item 7", "Item 8"],
        "description": ["d 7", "d 8"],
    }
    # seconds forced to be read as ms land in 1970: a wrong unit, said with the column and the unit
    with pytest.raises(DataFormatError, match=r"column 'when' read with time_unit=ms: .*1970-01-19 .*unit"):
        read_source("generic", [events, items], user_col="who", item_col="what", time_col="when",
                    title_col="name", items_path=items, time_unit="ms")  # fmt: skip


def test_dates_and_no_time(tmp_path):
    (tmp_path / "items.csv").write_text("item_id,title\na,A\n")
    events = tmp_path / "events.csv"
    events.write_text("user_id,item_id,timestamp\nu,a,2021-08-11 00:56:54\n")
    log = read_source("generic", [tmp_path])
    assert log.interactions.timestamp.tolist() == [1628643414000]
    events.write_text("user_id,item_id\nu,a\nu,a\n")
    with pytest.raises(DataFormatError, match="time_col=null"):
        read_source("generic", [tmp_path])
    log = read_source("generic", [tmp_path], time_col=None)
    assert log.interactions.timestamp.tolist() == [0, 1] and not log.has_time  # duplicates kept


def test_errors_name_columns_and_lines(tmp_path):
    (tmp_path / "items.csv").write_text("item_id,name\na,A\n")
    events = tmp_path / "events.csv"
    events.write_text("user_id,item_id,timestamp\nu,a,1588687728923\nu,a,later\n,a,1588687728923\n")
    with pytest.raises(DataFormatError, match=r"events.csv:3: timestamp"):
        read_source("generic", [tmp_path])
    with pytest.raises(
        DataFormatError, match=r"items.csv: missing column\(s\) \['title'\].*found \['item_id', 'name'\]"
    ):
        read_source("generic", [tmp_path], skip_bad_lines=True)
    log = read_source("generic", [tmp_path], skip_bad_lines=True, title_col="name")
    assert len(log.interactions) == 1 and log.bad_lines.to_dict()["total"] == 2


def test_which_file_is_which(tmp_path):
    EVENTS.to_csv(tmp_path / "a.csv", index=False)
    EVENTS.to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(ConfigError, match="items_path"):
        read_source("generic", [tmp_path])
    with pytest.raises(ConfigError, match="no option"):
        read_source("generic", [tmp_path], user_column="x")
    with pytest.raises(ConfigError, match="ships no"):
        read_source("generic", [tmp_path], use_shipped_split=True)


def test_corrupt_parquet(tmp_path):
    (tmp_path / "events.parquet").write_bytes(b"PAR1 not really")
    ITEMS.to_csv(tmp_path / "items.csv", index=False)
    with pytest.raises(DataFormatError, match="Parquet"):
        read_source("generic", [tmp_path])


def test_parquet_datetimes_and_int_ids(tmp_path):
    events = pd.DataFrame(
        {
            "user_id": [1, 1],
            "item_id": [10, 20],
            "timestamp": pd.to_datetime(["2021-08-11 00:56:54", "2022-07-16 00:00:00"], utc=True),
        }
    )
    events.to_parquet(tmp_path / "events.parquet")
    pd.DataFrame({"item_id": [10, 20], "title": ["Ten", None]}).to_parquet(tmp_path / "items.parquet")
    log = read_source("generic", [tmp_path])
    assert log.interactions.values.tolist()[0][:3] == ["1", "10", 1628643414000]
    assert log.items.title.tolist() == ["Ten", ""] and log.notes["items_without_title"] == 1
