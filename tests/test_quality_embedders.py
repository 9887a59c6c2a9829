"""Embedders for drift: the offline hashing default, WordLlama (optional extra), the provider API via the SDK."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from llm_telemetry import attributes as a
from llm_telemetry.fake_provider import embedding_vector
from llm_telemetry.processors.quality.embedders import (
    DRIFT_FEATURE,
    Embedder,
    HashingEmbedder,
    ProviderEmbedder,
    WordLlamaEmbedder,
    embedder_from_spec,
)

INVOICE = "Invoice INV-00042 from Acme Ltd dated 2025-04-03, total 1,234.56 EUR, due in 30 days."
TEXTS = [
    INVOICE,
    "Invoice INV-00043 from Acme Ltd dated 2025-04-05, total 1,250.00 EUR, due in 30 days.",
    "I'm sorry, but I can't help with that request.",
    "Résumé: 日本語のテキスト — naïve café",
    "",
]


def _cosine(u: np.ndarray, v: np.ndarray) -> float:
    return float(u @ v)


def test_hashing_rows_are_unit_float32_and_deterministic():
    emb = HashingEmbedder()
    assert isinstance(emb, Embedder)
    vectors = emb.embed(TEXTS)
    assert vectors.shape == (5, 256) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    # Batch composition does not matter: each text embeds alone exactly as inside a batch.
    alone = np.concatenate([emb.embed([t]) for t in TEXTS])
    np.testing.assert_array_equal(vectors, alone)
    np.testing.assert_array_equal(HashingEmbedder().embed(TEXTS), vectors)
    assert emb.embed([]).shape == (0, 256)


def test_hashing_is_the_same_in_another_process_with_another_hash_seed():
    """Saved baselines must stay valid after a restart: no Python hash() randomisation may leak in."""
    here = hashlib.sha256(HashingEmbedder().embed([INVOICE]).round(6).tobytes()).hexdigest()
    code = (
        "import hashlib; from llm_telemetry.processors.quality.embedders import HashingEmbedder; "
        f"print(hashlib.sha256(HashingEmbedder().embed([{INVOICE!r}]).round(6).tobytes()).hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert out.stdout.strip() == here


def test_hashing_space_is_pinned():
    """Saved baselines hold vectors of this exact space: changing the features or hashing must change the
    embedder's name (``hashing-v1``) and this test."""
    emb = HashingEmbedder()
    assert emb.name == "hashing-v1:dim=256:seed=0:char=3,4,5:word=2:nnz=4:max_chars=4096"
    np.testing.assert_allclose(emb.embed([INVOICE])[0, :5], [0.0745356, -0.0248452, -0.0745356, -0.0496904, -0.0496904], atol=1e-6)


def test_hashing_similar_outputs_are_closer_than_different_ones():
    emb = HashingEmbedder()
    invoice, invoice2, refusal, other, _ = emb.embed(TEXTS)
    assert _cosine(invoice, invoice2) > 0.7
    assert _cosine(invoice, refusal) < 0.3
    assert _cosine(invoice, other) < 0.3


def test_hashing_sees_digits_so_a_transposed_date_moves_the_vector():
    emb = HashingEmbedder()
    base, same, swapped = emb.embed([
        '{"invoice_date": "2025-03-25"}', '{"invoice_date": "2025-03-25"}', '{"invoice_date": "2025-25-03"}'
    ])
    assert _cosine(base, same) == pytest.approx(1.0)
    assert _cosine(base, swapped) < 0.95


def test_hashing_seed_and_dim_define_the_space_and_its_name():
    a_, b_ = HashingEmbedder(seed=0), HashingEmbedder(seed=1)
    assert a_.name != b_.name
    assert _cosine(a_.embed([INVOICE])[0], b_.embed([INVOICE])[0]) < 0.5
    assert HashingEmbedder(64).embed([INVOICE]).shape == (1, 64)
    with pytest.raises(ValueError, match="dim must be between"):
        HashingEmbedder(4)


def test_provider_embedder_goes_through_the_instrumented_sdk(instrumented, client, fake_provider):
    emb = ProviderEmbedder(client, "text-embedding-3-small", dimensions=16, batch_size=2)
    vectors = emb.embed(["alpha", "beta", "", "delta", "epsilon"])
    assert vectors.shape == (5, 16) and vectors.dtype == np.float32
    # The fake answers a deterministic unit vector per text; empty texts are sent as one space.
    expected = np.asarray([embedding_vector(t, 16) for t in ["alpha", "beta", " ", "delta", "epsilon"]], dtype=np.float32)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    posted = [r.json for r in fake_provider.requests if r.path.endswith("/embeddings")]
    assert [len(body["input"]) for body in posted] == [2, 2, 1]
    assert all(body["dimensions"] == 16 for body in posted)
    spans = [s for s in instrumented.spans() if s.attributes[a.OPERATION_NAME] == "embeddings"]
    assert len(spans) == 3
    assert {s.attributes[a.FEATURE] for s in spans} == {DRIFT_FEATURE}


def test_provider_embedder_rejects_a_reply_of_the_wrong_size(client, fake_provider):
    emb = ProviderEmbedder(client, "text-embedding-ada-002", dimensions=1536, send_dimensions=False)
    with pytest.raises(ValueError, match=r"got a 8-dimensional embedding, expected 1536"):
        emb.embed(["alpha"])  # the fake's default size is 8
    assert "dimensions" not in fake_provider.last_request.json


def test_embedder_from_spec():
    assert embedder_from_spec("hashing").dim == 256
    assert embedder_from_spec(" hashing:128 ").dim == 128
    with pytest.raises(ValueError, match=r"LLM_TELEMETRY_X = 'word2vec': expected hashing\[:DIM\]"):
        embedder_from_spec("word2vec", origin="LLM_TELEMETRY_X")
    with pytest.raises(ValueError, match="need an OpenAI SDK client"):
        embedder_from_spec("provider:text-embedding-3-small")
    with pytest.raises(ValueError, match="dim must be between 8 and 65536"):
        embedder_from_spec("hashing:4")


@pytest.mark.skipif(importlib.util.find_spec("wordllama") is None,
                    reason="optional extra not installed: pip install 'llm-telemetry[wordllama]'")
def test_wordllama_loads_offline_from_the_wheel(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    emb = WordLlamaEmbedder()
    vectors = emb.embed(TEXTS[:3])
    assert vectors.shape == (3, 256) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2])
    assert WordLlamaEmbedder(64).embed([INVOICE]).shape == (1, 64)
    assert emb.name.startswith("wordllama:l2_supercat:256")
