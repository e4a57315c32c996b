from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from calf_forecaster.prototypes import (
    cached_word_prototypes,
    embedding_fingerprint,
    word_prototypes,
)


def test_prototypes_equal_sklearn_pca_of_the_transposed_embeddings_up_to_sign() -> None:
    embeddings = torch.randn(300, 40, generator=torch.Generator().manual_seed(0))  # (V, D)
    prototypes = word_prototypes(embeddings, 25)  # (P, D)
    assert prototypes.shape == (25, 40) and prototypes.dtype == torch.float32
    scores = PCA(n_components=25, svd_solver="full").fit_transform(embeddings.numpy().T.astype(np.float64))
    expected = scores.T  # (P, D)
    for ours, theirs in zip(prototypes.numpy(), expected):
        sign = np.sign(ours @ theirs)
        np.testing.assert_allclose(ours, sign * theirs, rtol=1e-4, atol=1e-4)


def test_prototypes_are_deterministic_and_sign_pinned() -> None:
    embeddings = torch.randn(200, 32, generator=torch.Generator().manual_seed(1))
    first, second = word_prototypes(embeddings, 10), word_prototypes(embeddings.clone(), 10)
    assert torch.equal(first, second)
    assert torch.equal(word_prototypes(embeddings.double(), 10), first)


def test_too_many_prototypes_names_the_field() -> None:
    with pytest.raises(ValueError, match="`n_prototypes`"):
        word_prototypes(torch.randn(100, 16), 17)


def test_cache_is_reused_and_keyed_on_the_embedding_bytes(tmp_path, monkeypatch) -> None:
    embeddings = torch.randn(120, 16, generator=torch.Generator().manual_seed(2))
    first = cached_word_prototypes(embeddings, 8, cache_dir=tmp_path)
    files = list((tmp_path / "prototypes").iterdir())
    assert len(files) == 1
    calls = []
    monkeypatch.setattr("calf_forecaster.prototypes.word_prototypes",
                        lambda *a: calls.append(a) or torch.zeros(8, 16))
    assert torch.equal(cached_word_prototypes(embeddings, 8, cache_dir=tmp_path), first)
    assert calls == []  # served from disk
    changed = embeddings.clone()
    changed[0, 0] += 1e-3
    assert embedding_fingerprint(changed) != embedding_fingerprint(embeddings)
    cached_word_prototypes(changed, 8, cache_dir=tmp_path)
    assert len(calls) == 1 and len(list((tmp_path / "prototypes").iterdir())) == 2
