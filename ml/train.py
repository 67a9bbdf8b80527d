"""Train the dual encoder, evaluate it against the baselines, and register it in MLflow.

    make train CONFIG=ml/configs/default.yaml
    .venv/bin/pinlanding train --train-config ml/configs/default.yaml [--epochs N] [--resume CKPT]

(the entry point is the pipeline's CLI, which owns the warehouse session and the MLflow store; this
module is the library it calls: `train(cfg, spark, schema, workdir, experiment_id)`).

Logs params, per-epoch loss, Recall@1/5/10 (overall and per attribute type) for image+text,
image-only and text-only, the frequency-reweighting ablation and the BM25 / MiniLM zero-shot
baselines, then registers the model as `pinlanding-dual-encoder` (ml/registry.py). The `champion`
alias moves to the new version only if it beats the current champion's validation Recall@10 on the
same validation products and vocabulary (the champion is re-scored on the candidate's set when they
differ); a registry that cannot be read is an error, never a promotion.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from tqdm import tqdm

from ml import data as D
from ml.evaluate import (bm25_scores, ranks_of_positives, recall_at_k, recall_ceiling, reweight, tune_beta,
                         zero_shot_scores)
from ml.model import DualEncoder, DualEncoderConfig
from ml.registry import CHAMPION_ALIAS, REGISTERED_MODEL, champion_version

EXPERIMENT = REGISTERED_MODEL


@dataclass
class TrainConfig:
    seed: int = 13
    epochs: int = 6
    batch_size: int = 256
    image_batch_share: float = 0.5
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    max_products: int | None = None
    text_max_tokens: int = 64
    model: DualEncoderConfig = field(default_factory=DualEncoderConfig)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> "TrainConfig":
        raw = yaml.safe_load(Path(path).read_text()) or {}
        raw.update({k: v for k, v in overrides.items() if v is not None})
        model = DualEncoderConfig(**(raw.pop("model", None) or {}))
        return cls(model=model, **raw)

    def flat(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "model"}
        out.update({f"model.{k}": v for k, v in self.model.to_dict().items()})
        return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------- data

def stored_text_features(spark, schema: str, max_tokens: int, texts: list[str]) -> dict[str, np.ndarray]:
    """Features of these product texts that the warehouse already holds under this encoder
    (product_text_features, built by `dbt build`; none before the first build), so training does not
    embed them again. Only the texts asked for reach the driver: the store keeps every text it has
    ever seen (a 1M-product store is ~1.5 GB of floats; a `max_products` run needs a few hundred)."""
    if not texts or not spark.catalog.tableExists(f"{schema}.product_text_features"):
        return {}
    wanted = spark.createDataFrame(pd.DataFrame({"text_hash": sorted({D.text_key(t) for t in texts})}))
    rows = (spark.table(f"{schema}.product_text_features").where(f"encoder = '{D.text_encoder(max_tokens)}'")
            .select("text_hash", "features").join(wanted, "text_hash", "left_semi").toPandas())
    return {h: np.asarray(f, dtype=np.float32) for h, f in zip(rows["text_hash"], rows["features"])}


def load_catalog(spark, schema: str, cfg: TrainConfig, cache_dir: Path) -> D.Catalog:
    """Products, the active vocabulary and the ground truth (curated attributes the merchant's own
    fields state) from the warehouse."""
    products = spark.sql(f"select product_id, title, description, image_path from {schema}.int_products "
                         "order by product_id").toPandas()
    if cfg.max_products:
        # a deterministic subset, independent of the split (sha256 order, then id order again)
        by_hash = products["product_id"].map(lambda p: hashlib.sha256(f"subset:{p}".encode()).hexdigest())
        products = products.assign(_h=by_hash).sort_values("_h").head(cfg.max_products) \
            .drop(columns="_h").sort_values("product_id").reset_index(drop=True)
    vocab = spark.sql(f"select attribute_id, attribute_type, canonical_value, aliases from {schema}.attribute_vocabulary "
                      "where status = 'active' order by attribute_type, canonical_value").toPandas()
    truth = spark.sql(f"select product_id, attribute_id from {schema}.product_attributes_curated "
                      "where array_contains(source_backends, 'catalog') and confidence >= 0.9").toPandas()

    row_of = {p: i for i, p in enumerate(products["product_id"])}
    col_of = {a: j for j, a in enumerate(vocab["attribute_id"])}
    targets = torch.zeros(len(products), len(vocab))
    for p, a in zip(truth["product_id"], truth["attribute_id"]):
        if p in row_of and a in col_of:
            targets[row_of[p], col_of[a]] = 1.0
    split = np.array([D.split_of(p) for p in products["product_id"]])
    train = targets[torch.from_numpy(split == "train")]
    prior = (train.sum(0) + 1) / (len(train) + len(vocab))

    texts = [D.product_text(t, d) for t, d in zip(products["title"], products["description"])]
    attr_texts = [D.attribute_text(t, v) for t, v in zip(vocab["attribute_type"], vocab["canonical_value"])]
    stored = stored_text_features(spark, schema, cfg.text_max_tokens, texts)
    text = torch.from_numpy(D.text_features(texts, cache_dir, cfg.text_max_tokens, known=stored))
    attribute_text = torch.from_numpy(D.text_features(attr_texts, cache_dir, cfg.text_max_tokens))

    image_index = np.full(len(products), -1)
    photos = []
    for i, path in enumerate(tqdm(products["image_path"], desc="photos", unit="photo", mininterval=5)):
        if isinstance(path, str) and path:
            image_index[i] = len(photos)
            photos.append(D.load_image(path, cfg.model.image_size))
    images = torch.stack(photos) if photos else torch.zeros(0, 3, cfg.model.image_size, cfg.model.image_size)
    return D.Catalog(products["product_id"].tolist(), texts, split, text, images, image_index, targets,
                     vocab["attribute_id"].tolist(), vocab["attribute_type"].tolist(),
                     vocab["canonical_value"].tolist(), [list(a) for a in vocab["aliases"]], attribute_text,
                     prior.log(), products[["product_id", "title", "description", "image_path"]], cfg.text_max_tokens)


def batches(catalog: D.Catalog, rows: np.ndarray, cfg: TrainConfig, rng: np.random.Generator):
    """Batches that mix products with and without a photo (photos are a fifth of the catalog,
    so without this the vision tower would see few examples per step)."""
    with_photo = rows[catalog.image_index[rows] >= 0]
    without = rows[catalog.image_index[rows] < 0]
    n_photo = max(1, int(cfg.batch_size * cfg.image_batch_share)) if len(with_photo) else 0
    n_text = cfg.batch_size - n_photo
    steps = max(len(with_photo) // max(n_photo, 1), len(without) // max(n_text, 1), 1)
    photo_order, text_order = rng.permutation(with_photo), rng.permutation(without)
    for s in range(steps):
        picked = []
        if n_photo:
            picked.append(np.take(photo_order, range(s * n_photo, (s + 1) * n_photo), mode="wrap"))
        if n_text and len(without):
            picked.append(np.take(text_order, range(s * n_text, (s + 1) * n_text), mode="wrap"))
        yield np.unique(np.concatenate(picked))


# ------------------------------------------------------------------------------------- training

def product_tokens(model: DualEncoder, catalog: D.Catalog, rows: np.ndarray):
    return model.tokenize([catalog.product_texts[i] for i in rows])


def attribute_embeddings(model: DualEncoder, catalog: D.Catalog) -> torch.Tensor:
    return model.encode_vocabulary(catalog.attribute_text, catalog.attribute_word_texts)


def step_loss(model: DualEncoder, catalog: D.Catalog, rows: np.ndarray) -> dict:
    text = catalog.text[rows]
    photo_rows = catalog.image_index[rows]
    has = torch.from_numpy(photo_rows >= 0)
    attributes = attribute_embeddings(model, catalog)
    targets = catalog.targets[rows]
    text_embeddings = model.encode_product_text(text, product_tokens(model, catalog, rows))
    product = text_embeddings
    out = {}
    if has.any():
        images = D.augment(catalog.images[torch.from_numpy(photo_rows[photo_rows >= 0])])
        image_embeddings = model.encode_image(images)  # one vision pass serves both terms
        product = text_embeddings.clone()
        product[has] = model.fuse(image_embeddings, text_embeddings[has])
        # An image-only term of its own: the photo must carry colour, pattern and article type by
        # itself instead of leaning on the text it is fused with.
        out["image_only"] = model.criterion(image_embeddings, attributes, targets[has])["loss"]
    main = model.criterion(product, attributes, targets)
    out.update(main)
    out["total"] = main["loss"] + out.get("image_only", 0.0)
    return out


@torch.no_grad()
def embed_split(model: DualEncoder, catalog: D.Catalog, rows: np.ndarray, mode: str, batch: int = 512):
    """(product embeddings, rows used) for mode image_text | image_only | text_only."""
    model.eval()
    if mode == "image_only":
        rows = rows[catalog.image_index[rows] >= 0]
    out = []
    for start in range(0, len(rows), batch):
        r = rows[start:start + batch]
        photo_rows = catalog.image_index[r]
        has = torch.from_numpy(photo_rows >= 0)
        images = catalog.images[torch.from_numpy(photo_rows[photo_rows >= 0])] if has.any() else None
        if mode == "image_only":
            out.append(model.encode_product(None, images))
        else:
            out.append(model.encode_product(catalog.text[r], None if mode == "text_only" else images,
                                            has, product_tokens(model, catalog, r)))
    model.train()
    return (torch.cat(out) if out else torch.zeros(0, model.cfg.embed_dim)), rows


@torch.no_grad()
def scores_for(model: DualEncoder, catalog: D.Catalog, split: str, mode: str):
    rows = catalog.rows(split)
    model.eval()
    attributes = attribute_embeddings(model, catalog)
    model.train()
    products, rows = embed_split(model, catalog, rows, mode)
    return (products @ attributes.T).numpy(), catalog.targets[rows].numpy(), rows


def evaluate_model(model, catalog, split: str, beta: float) -> dict:
    metrics = {}
    prior = catalog.attribute_log_prior.numpy()
    for mode in ("image_text", "image_only", "text_only"):
        scores, targets, _ = scores_for(model, catalog, split, mode)
        if len(scores):
            for k, v in recall_at_k(reweight(scores, prior, beta), targets, catalog.attribute_types).items():
                metrics[f"{split}.{mode}.{k}"] = v
    return metrics


def save_checkpoint(path: Path, model, optimizer, epoch: int, cfg: TrainConfig) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                "config": cfg.flat()}, path)


def train(cfg: TrainConfig, spark, schema: str, workdir: Path, experiment_id: str, resume: Path | None = None,
          register: bool = True, release_warehouse: bool = False) -> dict:
    """Train, evaluate and (optionally) register. The caller points mlflow at its tracking store and
    passes the experiment: this library never reaches into the pipeline's settings."""
    import mlflow

    started = time.perf_counter()
    seed_everything(cfg.seed)
    catalog = load_catalog(spark, schema, cfg, workdir / "cache")
    if release_warehouse:
        spark.stop()  # a standalone run frees the embedded metastore for dbt while it trains
    model = DualEncoder(cfg.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    first_epoch = 0
    if resume:
        state = torch.load(resume, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        first_epoch = state["epoch"] + 1

    rng = np.random.default_rng(cfg.seed)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params(cfg.flat())
        mlflow.log_params({"products": len(catalog.product_ids), "vocabulary": len(catalog.attribute_ids),
                           "photos": len(catalog.images), **{f"split.{s}": int((catalog.split == s).sum())
                                                              for s in ("train", "validation", "test")}})
        train_rows = catalog.rows("train")
        for epoch in range(first_epoch, cfg.epochs):
            losses = []
            for rows in tqdm(list(batches(catalog, train_rows, cfg, rng)), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                             unit="batch", mininterval=10):
                out = step_loss(model, catalog, rows)
                optimizer.zero_grad()
                out["total"].backward()
                optimizer.step()
                losses.append({k: float(v) for k, v in out.items()})
            epoch_metrics = {f"train.{k}": float(np.mean([l[k] for l in losses if k in l])) for k in losses[0]}
            epoch_metrics["temperature"] = float(1 / model.criterion.scale())
            epoch_metrics.update({k: v for k, v in evaluate_model(model, catalog, "validation", 0.0).items()
                                  if k.count(".") == 2})  # overall numbers per epoch
            mlflow.log_metrics(epoch_metrics, step=epoch)
            save_checkpoint(workdir / "checkpoints" / run.info.run_id / f"epoch_{epoch:03d}.pt", model, optimizer, epoch, cfg)
            print(f"epoch {epoch + 1}: loss {epoch_metrics['train.loss']:.3f}, "
                  f"val R@10 {epoch_metrics.get('validation.image_text.recall_at_10', float('nan')):.3f}")

        # Frequency reweighting: tune beta on validation, report the ablation on test.
        val_scores, val_targets, _ = scores_for(model, catalog, "validation", "image_text")
        beta = tune_beta(val_scores, val_targets, catalog.attribute_log_prior.numpy())
        final = evaluate_model(model, catalog, "validation", beta)
        final.update(evaluate_model(model, catalog, "test", beta))
        ablation = {f"ablation.no_reweighting.{k.split('.', 1)[1]}": v
                    for k, v in evaluate_model(model, catalog, "test", 0.0).items() if k.count(".") == 2}
        baselines = baseline_metrics(catalog)
        # what a perfect scorer would reach on the same ground truth: the scale the recalls are read on
        test_rows = catalog.rows("test")
        with_photo = test_rows[catalog.image_index[test_rows] >= 0]  # the image-only rows
        ceiling = {f"ceiling.test.{k}": v for k, v in recall_ceiling(catalog.targets[test_rows].numpy()).items()}
        ceiling |= {f"ceiling.test_with_photo.{k}": v
                    for k, v in recall_ceiling(catalog.targets[with_photo].numpy()).items()}
        mlflow.log_metrics({"reweight_beta": beta, **final, **ablation, **baselines, **ceiling,
                            "train_seconds": time.perf_counter() - started})
        report = comparison_table(final, ablation, baselines, ceiling)
        mlflow.log_text(report, "comparison.txt")
        print(report)
        version = None
        if register:
            version = register_model(mlflow, run.info.run_id, model, catalog, beta,
                                     final["validation.image_text.recall_at_10"], workdir, cfg.text_max_tokens)
        return {"run_id": run.info.run_id, "beta": beta, "metrics": final, "ablation": ablation,
                "baselines": baselines, "version": version, "seconds": time.perf_counter() - started}


def baseline_metrics(catalog: D.Catalog) -> dict:
    rows = catalog.rows("test")
    targets = catalog.targets[rows].numpy()
    out = {}
    zero_shot = zero_shot_scores(catalog.text[rows].numpy(), catalog.attribute_text.numpy())
    for k, v in recall_at_k(zero_shot, targets).items():
        out[f"baseline.minilm_zero_shot.{k}"] = v
    bm25 = bm25_scores([catalog.product_texts[i] for i in rows], catalog.attribute_values)
    return out | {f"baseline.bm25.{k}": v for k, v in recall_at_k(bm25, targets).items()}


def comparison_table(final: dict, ablation: dict, baselines: dict, ceiling: dict | None = None) -> str:
    lines = [f"{'test split':<34}{'R@1':>8}{'R@5':>8}{'R@10':>8}"]
    rows = [("dual encoder, image+text", "test.image_text"), ("dual encoder, image-only", "test.image_only"),
            ("dual encoder, text-only", "test.text_only")]
    for label, prefix in rows:
        lines.append(f"{label:<34}" + "".join(f"{final.get(f'{prefix}.recall_at_{k}', float('nan')):>8.3f}" for k in (1, 5, 10)))
    lines.append(f"{'  without frequency reweighting':<34}" + "".join(
        f"{ablation.get(f'ablation.no_reweighting.image_text.recall_at_{k}', float('nan')):>8.3f}" for k in (1, 5, 10)))
    for name in ("bm25", "minilm_zero_shot"):
        lines.append(f"{'baseline ' + name:<34}" + "".join(
            f"{baselines.get(f'baseline.{name}.recall_at_{k}', float('nan')):>8.3f}" for k in (1, 5, 10)))
    for label, prefix in (("ceiling (a perfect scorer)", "ceiling.test"),
                          ("  on the products with a photo", "ceiling.test_with_photo")):
        if ceiling:
            lines.append(f"{label:<34}" + "".join(
                f"{ceiling.get(f'{prefix}.recall_at_{k}', float('nan')):>8.3f}" for k in (1, 5, 10)))
    return "\n".join(lines) + "\n"


def register_model(mlflow, run_id: str, model, catalog: D.Catalog, beta: float, val_recall_at_10: float,
                   workdir: Path, text_max_tokens: int) -> str:
    """Log the pyfunc, register a new version, and move `champion` only if it is better."""
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from ml.pyfunc import DualEncoderModel, write_bundle

    bundle = write_bundle(workdir / "bundles" / run_id, model, catalog, beta, text_max_tokens)
    example = pd.DataFrame({"product_id": ["1"], "title": ["Navy blue cotton t-shirt"],
                            "description": ["Round neck, short sleeves"], "image_path": [""]})
    signature = infer_signature(example, pd.DataFrame({"product_id": ["1"], "attributes": ["[]"]}),
                                params={"top_k": 10, "image_only": False})
    info = mlflow.pyfunc.log_model(name="model", python_model=DualEncoderModel(), artifacts={"bundle": str(bundle)},
                                   code_paths=[str(Path(__file__).resolve().parent)], signature=signature,
                                   input_example=example,
                                   registered_model_name=REGISTERED_MODEL)
    client = MlflowClient()
    version = str(info.registered_model_version)
    fingerprint = validation_fingerprint(catalog)
    client.set_model_version_tag(REGISTERED_MODEL, version, "validation_recall_at_10", f"{val_recall_at_10:.6f}")
    client.set_model_version_tag(REGISTERED_MODEL, version, "validation_fingerprint", fingerprint)
    champion = champion_version(client)  # None only when there is none; an unreadable registry raises
    if champion is None:
        best, basis = -1.0, "no champion yet"
    elif champion.tags.get("validation_fingerprint") == fingerprint and "validation_recall_at_10" in champion.tags:
        best, basis = float(champion.tags["validation_recall_at_10"]), "same validation set"
    else:
        # Trained on other products or another vocabulary: its own number is not comparable, so
        # score the champion on this candidate's validation products and vocabulary.
        best = champion_recall_on(catalog, champion.version, workdir / "cache")
        basis = f"champion v{champion.version} re-evaluated on this validation set"
        client.set_model_version_tag(REGISTERED_MODEL, version, "champion_recall_at_10_same_split", f"{best:.6f}")
    if val_recall_at_10 > best:
        client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION_ALIAS, version)
        print(f"registered {REGISTERED_MODEL} v{version}: {CHAMPION_ALIAS} "
              f"(validation R@10 {val_recall_at_10:.4f} > {best:.4f}; {basis})")
    else:
        print(f"registered {REGISTERED_MODEL} v{version}: {CHAMPION_ALIAS} stays v{champion.version} "
              f"(validation R@10 {val_recall_at_10:.4f} <= {best:.4f}; {basis})")
    return version


def validation_fingerprint(catalog: D.Catalog) -> str:
    """Identifies what a validation Recall@10 was measured on: the products, the vocabulary and
    the ground truth. Two models' numbers compare only when their fingerprints are equal."""
    rows = catalog.rows("validation")
    digest = hashlib.sha256()
    digest.update("\n".join(catalog.product_ids[i] for i in rows).encode())
    digest.update(b"\x00" + "\n".join(catalog.attribute_ids).encode())
    digest.update(b"\x00" + np.packbits(catalog.targets[rows].numpy() > 0).tobytes())
    return digest.hexdigest()[:16]


def champion_recall_on(catalog: D.Catalog, champion_version_id: str, feature_cache: Path) -> float:
    """The registered champion's image+text Recall@10 on this catalog's validation products, scored
    as it serves (its own vocabulary embeddings and reweighting); attributes it does not know can
    never rank for it."""
    import mlflow

    from ml.pyfunc import load_local

    champion = load_local(mlflow.artifacts.download_artifacts(f"models:/{REGISTERED_MODEL}/{champion_version_id}"))
    champion.feature_cache = feature_cache
    # the catalog's MiniLM features serve the champion too when it reads texts with the same limit
    stored = ({D.text_key(t): v for t, v in zip(catalog.product_texts, catalog.text.numpy())}
              if catalog.text_max_tokens == champion.text_max_tokens else None)
    rows = catalog.rows("validation")
    frame = catalog.products.iloc[rows].reset_index(drop=True)
    known = {a["attribute_id"]: j for j, a in enumerate(champion.vocabulary)}
    scores = np.full((len(rows), len(catalog.attribute_ids)), -np.inf, dtype=np.float32)
    ours = np.array([c for c, a in enumerate(catalog.attribute_ids) if a in known], dtype=int)
    theirs = np.array([known[catalog.attribute_ids[c]] for c in ours], dtype=int)
    for start in range(0, len(frame), 512):
        chunk = champion.scores(frame.iloc[start:start + 512], text_features=stored)
        scores[start:start + len(chunk), ours] = chunk[:, theirs]
    targets = catalog.targets[rows].numpy()
    ranks, cols = ranks_of_positives(scores, targets)
    ranks[~np.isfinite(scores[np.nonzero(targets)[0], cols])] = np.iinfo(ranks.dtype).max  # unknown: a miss
    return float((ranks < 10).mean()) if len(ranks) else float("nan")
