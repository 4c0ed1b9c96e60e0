import pytest

from llm2rec.data.sources import read_source
from llm2rec.errors import ConfigError, DataFormatError
from tests.data.sources.fixtures import META, REVIEWS, write_amazon2023, write_benchmark, write_lines


def _with_meta(tmp_path):
    _, meta = write_amazon2023(tmp_path / "raw")
    return meta


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("history", [True, False])
def test_last_out_split_files(tmp_path, header, history):
    csvs = write_benchmark(tmp_path, header=header, history=history, gz=header)  # gz on some variants
    log = read_source("amazon2023-benchmark", [*csvs, _with_meta(tmp_path)], use_shipped_split=True)
    df = log.interactions
    assert sorted(zip(df.user, df.item, df.timestamp, df.rating)) == sorted(REVIEWS)
    split_of = dict(zip(zip(df.user, df.item), log.presplit))
    # last event of each user is test, the one before valid, the rest train
    assert split_of[("AGKHLEW2SOWHNMFQIJGBECAF7INQ", "B000FOI48G")] == "test"
    assert split_of[("AGKHLEW2SOWHNMFQIJGBECAF7INQ", "B076WQZGPM")] == "valid"
    assert split_of[("AGKHLEW2SOWHNMFQIJGBECAF7INQ", "B01CUPMQZE")] == "train"
    assert "shipped" in log.notes["split"]
    assert log.items.set_index("item").loc["B01CUPMQZE", "title"] == META["B01CUPMQZE"]
    if history:
        assert log.notes["history_disagreements"] == 0


def test_without_use_shipped_split_no_presplit(tmp_path):
    write_benchmark(tmp_path)
    log = read_source("amazon2023-benchmark", [tmp_path, _with_meta(tmp_path)])
    assert log.presplit is None and "split" not in log.notes and len(log.interactions) == len(REVIEWS)


def test_rating_only_in_a_directory(tmp_path):
    write_benchmark(tmp_path / "bench", splits=False)
    write_amazon2023(tmp_path / "bench")  # the review file is not a CSV: ignored; its meta file is used
    log = read_source("amazon2023-benchmark", [tmp_path / "bench"])
    assert len(log.interactions) == len(REVIEWS) and (log.items.title != "").sum() == 3
    with pytest.raises(ConfigError, match="holds no split"):
        read_source("amazon2023-benchmark", [tmp_path / "bench"], use_shipped_split=True)


def test_titles_are_required(tmp_path):
    csvs = write_benchmark(tmp_path)
    with pytest.raises(DataFormatError, match="titles are needed"):
        read_source("amazon2023-benchmark", csvs)


def test_history_disagreement_counted(tmp_path):
    csvs = write_benchmark(tmp_path, history=True)
    test_csv = csvs[-1]
    test_csv.write_text(test_csv.read_text().replace("B01CUPMQZE B076WQZGPM", "B076WQZGPM B01CUPMQZE"))
    log = read_source("amazon2023-benchmark", [*csvs, _with_meta(tmp_path)])
    assert log.notes["history_disagreements"] == 1


def test_renamed_column(tmp_path):
    csvs = write_benchmark(tmp_path)
    csvs[0].write_text(csvs[0].read_text().replace("parent_asin", "asin"))
    with pytest.raises(
        DataFormatError, match=r"expected \['user_id', 'parent_asin'.*found \['user_id', 'asin'"
    ):
        read_source("amazon2023-benchmark", [*csvs, _with_meta(tmp_path)])


def test_bad_rows(tmp_path):
    csvs = write_benchmark(tmp_path, header=False)
    train = csvs[0]
    train.write_text(train.read_text() + "U9,B1,5.0,yesterday\nU9,B1,5.0\n")
    with pytest.raises(DataFormatError) as err:
        read_source("amazon2023-benchmark", [*csvs, _with_meta(tmp_path)])
    assert err.value.path == str(train) and err.value.line == 2  # line 1 is the one good row
    log = read_source("amazon2023-benchmark", [*csvs, _with_meta(tmp_path)], skip_bad_lines=True)
    assert len(log.interactions) == len(REVIEWS) and log.bad_lines.to_dict()["total"] == 2


def test_wrong_field_count_without_header(tmp_path):
    path = write_lines(tmp_path / "Cat.csv", ["a,b,c"])
    with pytest.raises(DataFormatError, match="4 or 5 fields"):
        read_source("amazon2023-benchmark", [path, _with_meta(tmp_path)])


def test_seconds_timestamps(tmp_path):
    path = write_lines(
        tmp_path / "Cat.csv", ["user_id,parent_asin,rating,timestamp", "U1,B01CUPMQZE,5.0,1588687728"]
    )
    log = read_source("amazon2023-benchmark", [path, _with_meta(tmp_path)])
    assert log.interactions.timestamp.tolist() == [1588687728000]
    assert log.notes["timestamps_converted_from_seconds"] == 1


def test_history_completes_a_missing_train_file(tmp_path):
    train, valid, test = write_benchmark(tmp_path, history=True)
    log = read_source("amazon2023-benchmark", [valid, test, _with_meta(tmp_path)], use_shipped_split=True)
    df = log.interactions.assign(split=log.presplit.to_numpy()).sort_values(["user", "timestamp"])
    u1 = df[df.user == "AGKHLEW2SOWHNMFQIJGBECAF7INQ"]
    assert u1.item.tolist() == ["B01CUPMQZE", "B076WQZGPM", "B000FOI48G"]  # train item restored from history
    assert u1.split.tolist() == ["train", "valid", "test"]
    assert u1.timestamp.iloc[0] < u1.timestamp.iloc[1]
    assert log.notes["history_items_added"] == 1 and log.notes["history_disagreements"] == 0


def test_a_byte_order_mark_does_not_turn_the_header_into_data(tmp_path):
    paths = write_benchmark(tmp_path / "bench", splits=False)
    plain = read_source("amazon2023-benchmark", [*paths, _with_meta(tmp_path)])
    paths[0].write_bytes(b"\xef\xbb\xbf" + paths[0].read_bytes())
    with_bom = read_source("amazon2023-benchmark", [*paths, _with_meta(tmp_path)])
    assert len(with_bom.interactions) == len(plain.interactions) == len(REVIEWS)
    assert with_bom.interactions.equals(plain.interactions)
