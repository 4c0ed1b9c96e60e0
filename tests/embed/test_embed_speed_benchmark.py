"""benchmarks/embed_speed.py's machinery on a few hundred titles: the synthetic dataset it writes is one
extraction reads, and one measurement (a fresh process) reports speed, peak RSS and the file's size; the encoder-only
control runs too."""

from __future__ import annotations

import argparse

from tests.benchmarks.conftest import load_benchmark


def test_one_measurement(tmp_path):
    bench = load_benchmark("embed_speed")
    encoder = bench.write_encoder(tmp_path / "encoder", hidden=32, layers=1)
    dataset = bench.write_dataset(tmp_path / "ds", 300)
    args = argparse.Namespace(batch_size=16, threads=1, dtype="float32")
    run = bench.measure(encoder, dataset, tmp_path, processes=1, args=args, dtype="float16")
    assert run["titles"] == 300 and run["processes"] == 1 and run["dtype"] == "float16"
    assert run["titles_per_s"] > 0 and run["peak_rss_mib_per_process"][0] > 0
    assert 0 < run["file_mib"] < 301 * 32 * 2 / 2**20 + 0.01
    assert not list(tmp_path.glob("vectors-*"))  # measure removes what it wrote
    control = bench.measure(encoder, dataset, tmp_path, processes=1, args=args, control=True)
    assert control["titles"] == 300 and "file_mib" not in control and control["titles_per_s"] > 0
