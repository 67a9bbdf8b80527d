"""How far the dual encoder's recall goes with more compute than the 2-core budget allows.

The default config trains for 5 epochs on 2 CPU cores (~18 min). This script asks what the same
model, loss and data reach with many more epochs or a larger photo tower, to tell a compute limit
from a model or ground-truth limit (issue #11). It runs the production pieces unchanged
(ml/train.py batches, step_loss, tune_beta, evaluate_model) on any torch device:

    # here, where the warehouse is (reads it exactly as `pinlanding train` does, then writes a
    # compact copy: MiniLM features as int8, photos as JPEG at the tower's size)
    .venv/bin/python benchmarks/bench_training_ceiling.py export --out .gpu/catalog
    # anywhere with torch + open_clip, e.g. a GPU machine
    python3 benchmarks/bench_training_ceiling.py train --catalog .gpu/catalog --device cuda \
        --epochs 30 --set model.resnet_width=48

Training runs on --device; evaluation always runs on the CPU with the production functions.
Prints validation Recall@10 by epoch and one JSON line of test Recall@10 (overall and per type) for
image+text, image-only and text-only.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml import data as D  # noqa: E402
from ml.train import TrainConfig  # noqa: E402


def export(out: Path, config: Path) -> None:
    from PIL import Image

    from ml.train import load_catalog
    from pinlanding import settings

    settings.pin_environment()
    from pinlanding.warehouse import spark_session

    cfg = TrainConfig.from_yaml(config)
    spark = spark_session()
    catalog = load_catalog(spark, settings.target_schema(), cfg, settings.data_dir() / "training" / "cache")
    spark.stop()
    out.mkdir(parents=True, exist_ok=True)
    # MiniLM features are unit vectors: int8 with a per-row scale keeps them to ~1e-3
    text = catalog.text.numpy()
    scale = np.abs(text).max(1, keepdims=True) / 127.0
    photos, offsets = bytearray(), [0]
    pixels = ((catalog.images * D.STD + D.MEAN).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for p in pixels:
        buf = io.BytesIO()
        Image.fromarray(p).save(buf, "JPEG", quality=93)
        photos += buf.getvalue()
        offsets.append(len(photos))
    rows, cols = np.nonzero(catalog.targets.numpy())
    np.savez(out / "catalog.npz", text_q=np.round(text / scale).astype(np.int8), text_scale=scale.astype(np.float32),
             attribute_text=catalog.attribute_text.numpy(), split=catalog.split.astype(str),
             image_index=catalog.image_index, target_rows=rows.astype(np.int32), target_cols=cols.astype(np.int32),
             log_prior=catalog.attribute_log_prior.numpy(), photos=np.frombuffer(bytes(photos), dtype=np.uint8),
             photo_offsets=np.array(offsets, dtype=np.int64))
    (out / "meta.json").write_text(json.dumps({
        "product_ids": catalog.product_ids, "product_texts": catalog.product_texts,
        "attribute_ids": catalog.attribute_ids, "attribute_types": catalog.attribute_types,
        "attribute_values": catalog.attribute_values, "attribute_aliases": catalog.attribute_aliases,
        "text_max_tokens": catalog.text_max_tokens, "image_size": cfg.model.image_size}))
    print(f"exported {len(catalog.product_ids)} products, {len(pixels)} photos, {len(catalog.attribute_ids)} "
          f"attributes to {out} ({sum(f.stat().st_size for f in out.iterdir()) / 2**20:.1f} MiB)")


def load(path: Path) -> D.Catalog:
    from PIL import Image

    meta = json.loads((path / "meta.json").read_text())
    z = np.load(path / "catalog.npz")
    text = torch.from_numpy(z["text_q"].astype(np.float32) * z["text_scale"])
    offsets, blob = z["photo_offsets"], z["photos"].tobytes()
    images = []
    for a, b in zip(offsets[:-1], offsets[1:]):
        with Image.open(io.BytesIO(blob[a:b])) as im:
            pixels = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)
        images.append((pixels.float() / 255.0 - D.MEAN) / D.STD)
    targets = torch.zeros(len(meta["product_ids"]), len(meta["attribute_ids"]))
    targets[torch.from_numpy(z["target_rows"].astype(np.int64)), torch.from_numpy(z["target_cols"].astype(np.int64))] = 1.0
    return D.Catalog(meta["product_ids"], meta["product_texts"], z["split"].astype(object), text, torch.stack(images),
                     z["image_index"], targets, meta["attribute_ids"], meta["attribute_types"], meta["attribute_values"],
                     meta["attribute_aliases"], torch.from_numpy(z["attribute_text"]), torch.from_numpy(z["log_prior"]),
                     None, meta["text_max_tokens"])


def moved(catalog: D.Catalog, device: str) -> D.Catalog:
    from dataclasses import replace

    return replace(catalog, text=catalog.text.to(device), images=catalog.images.to(device),
                   targets=catalog.targets.to(device), attribute_text=catalog.attribute_text.to(device))


def evaluate_on_cpu(model, catalog: D.Catalog, split: str, beta: float | None = None) -> tuple[dict, float]:
    from ml.evaluate import tune_beta
    from ml.train import evaluate_model, scores_for

    torch.set_default_device("cpu")
    model.cpu()
    if beta is None:
        scores, targets, _ = scores_for(model, catalog, "validation", "image_text")
        beta = tune_beta(scores, targets, catalog.attribute_log_prior.numpy())
    return evaluate_model(model, catalog, split, beta), beta


def train(args) -> None:
    from tqdm import tqdm

    from ml.model import DualEncoder
    from ml.train import batches, seed_everything, step_loss

    overrides = dict(kv.split("=", 1) for kv in args.set)
    cfg = TrainConfig.from_yaml(args.config, epochs=args.epochs)
    for key, raw in overrides.items():
        target, name = (cfg.model, key[6:]) if key.startswith("model.") else (cfg, key)
        if not hasattr(target, name):
            raise SystemExit(f"unknown setting {key}")
        import yaml
        setattr(target, name, yaml.safe_load(raw))
    cpu_catalog = load(args.catalog)
    if cpu_catalog.images.shape[-1] != cfg.model.image_size:
        import torch.nn.functional as F
        cpu_catalog.images = F.interpolate(cpu_catalog.images, size=cfg.model.image_size, mode="bicubic",
                                           antialias=True)
    seed_everything(cfg.seed)
    model = DualEncoder(cfg.model)
    optimizer = None
    rng = np.random.default_rng(cfg.seed)
    train_rows = cpu_catalog.rows("train")
    history, started = [], time.perf_counter()
    for epoch in range(cfg.epochs):
        torch.set_default_device(args.device)
        model.to(args.device)
        if optimizer is None:
            optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        catalog = moved(cpu_catalog, args.device)
        for rows in tqdm(list(batches(catalog, train_rows, cfg, rng)), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                         unit="batch", mininterval=30, disable=not sys.stderr.isatty()):
            with torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16, enabled=args.bf16):
                out = step_loss(model, catalog, rows)
            optimizer.zero_grad()
            out["total"].backward()
            optimizer.step()
        if (epoch + 1) % args.eval_every == 0 or epoch + 1 == cfg.epochs:
            metrics, _ = evaluate_on_cpu(model, cpu_catalog, "validation", 0.0)
            history.append((epoch + 1, round(time.perf_counter() - started, 1),
                            *(round(metrics.get(f"validation.{m}.recall_at_10", float("nan")), 4)
                              for m in ("image_text", "image_only", "text_only"))))
            print(f"epoch {epoch + 1}: {history[-1][1]} s, validation R@10 image+text {history[-1][2]}, "
                  f"image-only {history[-1][3]}, text-only {history[-1][4]}", flush=True)
    seconds = time.perf_counter() - started
    final, beta = evaluate_on_cpu(model, cpu_catalog, "test")
    test = {k.split(".", 1)[1]: round(v, 4) for k, v in final.items() if "recall_at_10" in k}
    fit = {}
    if args.eval_train:  # how well the model fits its own training products (capacity, not generalisation)
        fit = {k.split(".", 1)[1]: round(v, 4) for k, v in evaluate_on_cpu(model, cpu_catalog, "train", beta)[0].items()
               if k.count(".") == 2 and k.endswith("recall_at_10")}
    print(json.dumps({"label": args.label or " ".join(args.set) or "default", "epochs": cfg.epochs,
                      "device": args.device, "train_seconds": round(seconds, 1), "beta": beta,
                      "validation_by_epoch": history, "test_recall_at_10": test,
                      "train_recall_at_10": fit}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="write the training catalog from the warehouse")
    ex.add_argument("--out", type=Path, required=True)
    ex.add_argument("--config", type=Path, default=ROOT / "ml/configs/default.yaml")
    tr = sub.add_parser("train", help="train on --device, evaluate on the CPU")
    tr.add_argument("--catalog", type=Path, required=True)
    tr.add_argument("--config", type=Path, default=ROOT / "ml/configs/default.yaml")
    tr.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    tr.add_argument("--epochs", type=int, default=None)
    tr.add_argument("--eval-every", type=int, default=5)
    tr.add_argument("--eval-train", action="store_true", help="also report Recall@10 on the training split")
    tr.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the training steps")
    tr.add_argument("--set", action="append", default=[], help="config override, e.g. model.resnet_width=48")
    tr.add_argument("--label", default="")
    args = parser.parse_args()
    if args.command == "export":
        export(args.out, args.config)
    else:
        train(args)


if __name__ == "__main__":
    main()
