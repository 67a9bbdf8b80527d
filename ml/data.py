"""Training data for the dual encoder: deterministic product split, targets, features, photos."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

# CLIP's image normalisation.
MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)


def split_of(product_id: str, validation: float = 0.1, test: float = 0.1) -> str:
    """train / validation / test from a hash of the product id: stable across runs and machines."""
    u = int(hashlib.sha256(product_id.encode("utf-8")).hexdigest()[:12], 16) / 16**12
    return "test" if u < test else "validation" if u < test + validation else "train"


def product_text(title: str, description: str | None, max_description_chars: int = 200) -> str:
    return f"{title}. {(description or '')[:max_description_chars]}".strip()


def attribute_text(attribute_type: str, value: str) -> str:
    return f"{attribute_type.replace('_', ' ')}: {value.lower()}"


def load_image(path: str, size: int) -> torch.Tensor:
    """A photo as a normalised (3, size, size) tensor (photos were checked in staging)."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB").resize((size, size), Image.BICUBIC)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
    return (pixels.float() / 255.0 - MEAN) / STD


@lru_cache(maxsize=2)
def _stored_features(path: Path, mtime: float) -> dict[str, np.ndarray]:
    with np.load(path) as stored:
        return dict(zip(stored["keys"].tolist(), stored["vectors"]))


def text_features(texts: list[str], cache_dir: Path | None = None, max_seq_length: int = 64,
                  persist: bool = True) -> np.ndarray:
    """Frozen MiniLM features, cached on disk by text hash so reruns embed only new texts.
    Readers that run in parallel (Spark workers) pass persist=False and only read the cache."""
    from ml.embeddings import embed, load_minilm

    keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
    path = cache_dir / f"minilm_{max_seq_length}.npz" if cache_dir else None
    stored = _stored_features(path, path.stat().st_mtime) if path and path.exists() else {}
    cache = {k: stored[k] for k in keys if k in stored}  # no copy of the whole stored cache per call
    missing = sorted({k for k in keys if k not in cache})
    if missing:
        by_key = dict(zip(keys, texts))
        model = load_minilm()
        model.max_seq_length = max_seq_length
        vectors = embed([by_key[k] for k in missing])
        cache.update(zip(missing, vectors))
        if path and persist:
            cache = {**stored, **cache}
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, keys=np.array(list(cache)), vectors=np.stack(list(cache.values())))
    return np.stack([cache[k] for k in keys]).astype(np.float32)


@dataclass
class Catalog:
    """Products, vocabulary and the multi-hot ground truth, ready for training and evaluation."""

    product_ids: list[str]
    product_texts: list[str]          # title + start of description (for the BM25 baseline)
    split: np.ndarray                 # (N,) "train" / "validation" / "test"
    text: torch.Tensor                # (N, 384) MiniLM features
    images: torch.Tensor              # (M, 3, S, S) photos of the products that have one
    image_index: np.ndarray           # (N,) row in `images`, -1 without a photo
    targets: torch.Tensor             # (N, V) multi-hot ground truth
    attribute_ids: list[str]
    attribute_types: list[str]
    attribute_values: list[str]
    attribute_aliases: list[list[str]]
    attribute_text: torch.Tensor      # (V, 384)
    attribute_log_prior: torch.Tensor  # (V,) log of the share of training products carrying it

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)
