"""Word prototypes: principal components of a backbone's input word-embedding matrix (docs/method.md §5).

Symbols: V vocabulary size, D embedding width, P number of prototypes.

The orientation is pinned: ``E.T`` (D x V) is treated as D samples of V features, each of the V
columns is centred over the D samples, and the prototypes are the PCA scores transposed,
``(U[:, :P] * s[:P]).T`` of shape (P, D). Signs follow scikit-learn's ``svd_flip`` convention
(the largest-magnitude entry of each right singular vector is positive), so the result is
deterministic for a given embedding matrix. Results are cached on disk under a key derived from the
embedding bytes, so a changed backbone never reuses a stale cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from calf_forecaster.paths import CACHE_ENV_VAR  # noqa: F401  (re-exported)
from calf_forecaster.paths import cache_dir as default_cache_dir

logger = logging.getLogger(__name__)

#: Bump when the computation changes, so old cache entries are not reused.
PROTOTYPE_ALGORITHM_VERSION = 2


def word_prototypes(embeddings: torch.Tensor, n_prototypes: int) -> torch.Tensor:
    """Compute ``n_prototypes`` word prototypes from a (V, D) embedding matrix.

    Parameters
    ----------
    embeddings
        Word-embedding matrix of shape (V, D).
    n_prototypes
        Number P of principal components to keep; at most D.

    Returns
    -------
    torch.Tensor
        Prototypes of shape (P, D), float32, on the CPU.

    Raises
    ------
    ValueError
        If ``embeddings`` is not 2-D or ``n_prototypes`` exceeds the embedding width D.
    """
    if embeddings.ndim != 2:
        raise ValueError(f"`embeddings` must be (V, D), got shape {tuple(embeddings.shape)}")
    vocab_size, width = embeddings.shape
    if not 1 <= n_prototypes <= min(width, vocab_size):
        raise ValueError(
            f"`n_prototypes` must be between 1 and the embedding width D={width} (and the "
            f"vocabulary size {vocab_size}), got {n_prototypes}; set n_prototypes <= {width}"
        )
    samples = embeddings.detach().to("cpu", torch.float64).T  # (D, V): D samples of V features
    centred = samples - samples.mean(dim=0, keepdim=True)  # centre each column over D
    # PCA through the (D, D) Gram matrix: centred = U diag(s) V.T  =>  gram = U diag(s^2) U.T.
    # In float64 this matches the SVD to ~1e-10 and is ~15x faster than SVD of the (D, V) matrix.
    eigenvalues, eigenvectors = torch.linalg.eigh(centred @ centred.T)  # ascending
    order = torch.argsort(eigenvalues, descending=True, stable=True)[:n_prototypes]
    singular = eigenvalues[order].clamp_min(0.0).sqrt()  # (P,)
    left = eigenvectors[:, order]  # (D, P)
    right = centred.T.float() @ left.float()  # (V, P) = V diag(s); only signs needed: float32
    # svd_flip on V: the largest |entry| of each right singular vector becomes positive.
    pivot = right.abs().argmax(dim=0)  # (P,)
    signs = torch.sign(right[pivot, torch.arange(n_prototypes)])
    signs[signs == 0] = 1.0
    scores = left * (singular * signs)  # (D, P)
    return scores.T.contiguous().to(torch.float32)  # (P, D)


def embedding_fingerprint(embeddings: torch.Tensor) -> str:
    """SHA-256 of the embedding matrix's shape, dtype and bytes (changes whenever a weight does)."""
    tensor = embeddings.detach().to("cpu").contiguous()
    digest = hashlib.sha256()
    digest.update(f"{tuple(tensor.shape)}|{tensor.dtype}".encode())
    digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def cached_word_prototypes(
    embeddings: torch.Tensor,
    n_prototypes: int,
    cache_dir: str | Path | None = None,
    fingerprint: str | None = None,
) -> torch.Tensor:
    """:func:`word_prototypes`, read from or written to an on-disk cache.

    Parameters
    ----------
    embeddings
        Word-embedding matrix of shape (V, D).
    n_prototypes
        Number P of prototypes.
    cache_dir
        Cache folder; default :func:`default_cache_dir`. An unwritable folder only logs a warning.
    fingerprint
        Precomputed :func:`embedding_fingerprint` of ``embeddings``, if the caller has it.

    Returns
    -------
    torch.Tensor
        Prototypes of shape (P, D), float32.
    """
    fingerprint = fingerprint or embedding_fingerprint(embeddings)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / "prototypes" / (
        f"v{PROTOTYPE_ALGORITHM_VERSION}-{fingerprint[:32]}-p{n_prototypes}.safetensors"
    )
    if path.is_file():
        try:
            return load_file(str(path))["prototypes"]
        except Exception as error:  # a corrupt entry is recomputed, never trusted
            logger.warning("ignoring unreadable prototype cache %s (%s)", path, error)
    prototypes = word_prototypes(embeddings, n_prototypes)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".tmp{os.getpid()}")
        save_file({"prototypes": prototypes}, str(temporary))
        os.replace(temporary, path)
    except OSError as error:
        logger.warning("could not write prototype cache %s (%s); continuing without", path, error)
    return prototypes
