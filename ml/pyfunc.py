"""The dual encoder as an MLflow pyfunc: products in, top-K scored attributes out.

Artifacts: the model weights and config, and the vocabulary it was trained on with its attribute
embeddings (computed once per vocabulary version), log prior and the tuned reweighting beta.
Input: a DataFrame with product_id, title, description, image_path (nullable).
Params: top_k (default 10), image_only (default False).
Output: product_id and `attributes`, a JSON list of {attribute_id, type, value, score}.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

from ml.registry import CHAMPION_ALIAS, REGISTERED_MODEL, champion_version


class DualEncoderModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from ml.model import DualEncoderConfig

        bundle = self.bundle = Path(context.artifacts["bundle"])
        meta = json.loads((bundle / "vocabulary.json").read_text())
        self.config = DualEncoderConfig.from_dict(json.loads((bundle / "config.json").read_text()))
        self.config.pretrained_vision = None  # the weights below already contain the tower
        self.model = self.trained_model()
        # channels-last convolutions: the ResNet photo tower ~1.2x (bfloat16) to ~1.35x (float32)
        # faster on one CPU thread (bench_image_scoring.py times the trained, channels-last and
        # served towers: docs/benchmarks.md); a no-op for other layers
        self.model = self.model.to(memory_format=torch.channels_last)
        if self.config.vision_tower == "resnet":
            self.model.visual = fuse_batch_norms(self.model.visual)
        self.vocabulary = meta["attributes"]
        self.text_max_tokens = meta["text_max_tokens"]
        self.beta = meta["beta"]
        self.log_prior = np.array(meta["log_prior"], dtype=np.float32)
        self.attribute_embeddings = torch.from_numpy(np.load(bundle / "attribute_embeddings.npy"))

    def trained_model(self):
        """The bundle's weights as trained (eval mode, before the serving layout and folding)."""
        from ml.model import DualEncoder

        model = DualEncoder(self.config)
        model.load_state_dict(torch.load(self.bundle / "model.pt", map_location="cpu", weights_only=True))
        return model.eval()

    feature_cache: Path | None = None  # MiniLM feature cache to read (champion re-evaluation in ml/train.py sets it)

    def embed_products(self, frame: pd.DataFrame, image_only: bool = False,
                       text_features: dict[str, np.ndarray] | None = None, bfloat16: bool = False) -> np.ndarray:
        """`text_features`: MiniLM features already at hand, by ml.data.text_key (the feature store).
        `bfloat16`: run the towers under bfloat16 autocast (where the CPU has it natively: the
        photo tower ~1.6x faster, top-10 attributes 99.9% the same; benchmarks/bench_image_scoring.py);
        MiniLM, when a text is not in `text_features`, stays in float32 here."""
        from ml import data as D

        paths = [p if isinstance(p, str) and p else None for p in frame.get("image_path", [None] * len(frame))]
        has = torch.tensor([p is not None for p in paths], dtype=torch.bool)
        with torch.no_grad():
            images = (torch.stack([D.load_image(p, self.config.image_size) for p in paths if p])
                      .contiguous(memory_format=torch.channels_last) if has.any() else None)
            if not image_only:
                texts = [D.product_text(t or "", d)
                         for t, d in zip(frame["title"], frame.get("description", [None] * len(frame)))]
                features = torch.from_numpy(D.text_features(texts, self.feature_cache, self.text_max_tokens,
                                                              persist=False, known=text_features))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
                if image_only:
                    out = torch.zeros(len(frame), self.config.embed_dim)
                    if images is not None:
                        out[has] = self.model.encode_image(images).float()
                    return out.numpy()
                return self.model.encode_product(features, images, has, self.model.tokenize(texts)).float().numpy()

    def scores(self, frame: pd.DataFrame, image_only: bool = False,
               text_features: dict[str, np.ndarray] | None = None, bfloat16: bool = False) -> np.ndarray:
        """(products, vocabulary) scores as served: cosine plus the frequency prior (ml/evaluate.py)."""
        from ml.evaluate import reweight

        cosine = self.embed_products(frame, image_only, text_features, bfloat16) @ self.attribute_embeddings.numpy().T
        return reweight(cosine, self.log_prior, self.beta)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        params = params or {}
        top_k = int(params.get("top_k", 10))
        scores = self.scores(model_input, bool(params.get("image_only", False)))
        top = np.argsort(-scores, axis=1)[:, :top_k]
        attributes = [json.dumps([{"attribute_id": self.vocabulary[j]["attribute_id"], "type": self.vocabulary[j]["type"],
                                   "value": self.vocabulary[j]["value"], "score": round(float(scores[i, j]), 5)}
                                  for j in row]) for i, row in enumerate(top)]
        return pd.DataFrame({"product_id": model_input["product_id"].astype(str).tolist(), "attributes": attributes})


def write_bundle(path: Path, model, catalog, beta: float, text_max_tokens: int) -> Path:
    """Everything the pyfunc needs, in one directory logged as an MLflow artifact."""
    path.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path / "model.pt")
    (path / "config.json").write_text(json.dumps(model.cfg.to_dict()))
    with torch.no_grad():
        model.eval()
        embeddings = model.encode_vocabulary(catalog.attribute_text, catalog.attribute_word_texts)
        np.save(path / "attribute_embeddings.npy", embeddings.numpy())
        model.train()
    (path / "vocabulary.json").write_text(json.dumps({
        "attributes": [{"attribute_id": a, "type": t, "value": v, "aliases": al} for a, t, v, al in
                       zip(catalog.attribute_ids, catalog.attribute_types, catalog.attribute_values,
                           catalog.attribute_aliases)],
        "log_prior": catalog.attribute_log_prior.tolist(), "beta": beta, "text_max_tokens": text_max_tokens,
    }))
    return path


def fuse_batch_norms(tower: torch.nn.Module) -> torch.nn.Module:
    """The tower, in eval mode, with every BatchNorm folded into the convolution before it (torch.fx):
    inference only (frozen statistics), the same outputs up to float rounding, one pass over the
    activations fewer per layer (the served ResNet-96 ~1.3x faster: docs/benchmarks.md)."""
    from torch.fx.experimental.optimization import fuse

    return fuse(tower.eval())


_LOADED: dict[str, "DualEncoderModel"] = {}


def load_local(model_dir: str) -> "DualEncoderModel":
    """The unwrapped model from a downloaded MLflow model directory, loaded once per process
    (Spark workers call this once per partition; the second call is a dict lookup)."""
    if model_dir not in _LOADED:
        _LOADED[model_dir] = mlflow.pyfunc.load_model(model_dir).unwrap_python_model()
    return _LOADED[model_dir]


def pack_model_dir(model_dir: str) -> bytes:
    """The downloaded MLflow model directory as tar bytes, to ship inside a Spark task: on a
    cluster (or behind Spark Connect) the executors do not see the driver's files."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(model_dir, arcname="model")
    return buffer.getvalue()


def load_packed(packed: bytes) -> "DualEncoderModel":
    """`load_local` for bytes from `pack_model_dir`: unpacked once per process into a private
    temporary directory named by the content hash, so a new champion never reuses an old one."""
    import hashlib
    import tempfile

    digest = hashlib.sha256(packed).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"pinlanding-model-{digest}"
    for attempt in (1, 2):  # a second time when another worker pruned it between check and load
        if not (target / "model" / "MLmodel").is_file():
            _unpack(packed, target)
        try:
            os.utime(target)  # in use: pruning goes by the last use, not the unpacking
            model = load_local(str(target / "model"))
            break
        except OSError:
            if attempt == 2:
                raise
            _discard(target)
    prune_unpacked(target)
    return model


def _unpack(packed: bytes, target: Path) -> None:
    import io
    import tarfile
    import tempfile

    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}-"))
    with tarfile.open(fileobj=io.BytesIO(packed), mode="r") as tar:
        tar.extractall(staging, filter="data")  # refuses absolute paths, `..` and links out
    if target.exists() and not (target / "model" / "MLmodel").is_file():
        _discard(target)  # a half-removed leftover would make the rename below fail forever
    try:
        staging.rename(target)  # atomic: concurrent workers either win or find it complete
    except OSError:
        _discard(staging)


def _discard(folder: Path) -> None:
    """Remove a folder without ever leaving it half-removed under its own name: renamed away
    (atomic) first, then deleted."""
    import shutil
    import uuid

    trash = folder.with_name(f"{folder.name}.discarded-{uuid.uuid4().hex[:8]}")
    try:
        folder.rename(trash)
    except OSError:
        return  # gone already, or another worker is discarding it
    shutil.rmtree(trash, ignore_errors=True)


def prune_unpacked(keep: Path, max_idle_s: float = 86400.0) -> list[Path]:
    """Remove the other unpacked champions beside `keep` that no process has used for a day: each
    champion (and each test's model) unpacks ~50 MB into the temporary directory of every worker
    machine, and nothing else would ever remove them. Returns what it removed."""
    import time

    removed = []
    cutoff = time.time() - max_idle_s
    for other in keep.parent.glob("pinlanding-model-*"):
        try:
            stale = other != keep and other.is_dir() and other.stat().st_mtime < cutoff
        except OSError:
            continue  # removed meanwhile
        if stale:
            _discard(other)
            removed.append(other)
    return removed


def resolve_champion(name: str = REGISTERED_MODEL, alias: str = CHAMPION_ALIAS) -> tuple[str, str]:
    """(version, local model directory) of the alias; a clear error when there is none yet."""
    version = champion_version(name=name, alias=alias)
    if version is None:
        raise RuntimeError(f"no '{alias}' version of {name} in the MLflow registry: train one first "
                           "(`make train`, or `make run`, which trains when none exists)")
    local = mlflow.artifacts.download_artifacts(f"models:/{name}/{version.version}")
    return str(version.version), local
