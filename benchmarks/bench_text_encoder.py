"""Frozen MiniLM in float32, under bfloat16 autocast, and int8 (torch dynamic quantization of its
Linear layers): how much faster is a first pass over a fresh catalog, and what does it cost?

    .venv/bin/python benchmarks/bench_text_encoder.py [--sample 2000]   # after `make run`

MiniLM is ~80% of scoring a fresh catalog (docs/benchmarks.md, 250k run); product_text_features
removes it from every later run, not from the first.

- Speed: `--sample` product texts (test split first), one torch thread as in a Spark worker, the
  training config's token limit, the batch size of ml/embeddings.embed; texts/s after a warm-up.
  bfloat16 is fast only on CPUs that have it natively (printed: ml/embeddings.bfloat16_is_native).
- Agreement: cosine between each encoder's features and float32's for the same texts.
- The matcher: the champion's test-split Recall@1/5/10 (image+text, text-only, per type) with
  float32 features (as the champion was trained), and with each encoder's features for the products alone (a faster
  first pass feeding today's champion) and for products and vocabulary.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))
sys.path.insert(0, str(PROJECT_DIR / "benchmarks"))


def int8_minilm(max_tokens: int):
    import torch
    from sentence_transformers import SentenceTransformer

    from ml.embeddings import minilm_path

    model = SentenceTransformer(minilm_path(), device="cpu")
    model.max_seq_length = max_tokens
    # in place: `auto_model` is a read-only view of the module in sentence-transformers 5
    torch.ao.quantization.quantize_dynamic(model[0].auto_model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    assert any("quantized" in type(m).__module__ for m in model.modules()), "no layer was quantized"
    return model


def encode(model, texts: list[str]) -> np.ndarray:
    return model.encode(texts, batch_size=128, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False).astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=2000, help="texts timed per encoder")
    parser.add_argument("--train-config", default=str(PROJECT_DIR / "ml/configs/default.yaml"))
    args = parser.parse_args()

    import torch

    from pinlanding import settings

    settings.pin_environment()
    from ml import data as D
    from ml.embeddings import bfloat16_is_native, embed, load_minilm
    from ml.train import TrainConfig, evaluate_model

    from champion_catalog import champion_and_catalog

    cfg = TrainConfig.from_yaml(args.train_config)
    version, served, catalog, spark = champion_and_catalog(args.train_config)
    spark.stop()

    torch.set_num_threads(1)
    fp32 = load_minilm()
    fp32.max_seq_length = cfg.text_max_tokens
    encoders = {"float32": lambda texts: embed(texts),
                "bfloat16": lambda texts: embed(texts, bfloat16=True),
                "int8": lambda texts: encode(int8, texts)}
    int8 = int8_minilm(cfg.text_max_tokens)
    order = np.concatenate([catalog.rows("test"), catalog.rows("validation"), catalog.rows("train")])
    sample = [catalog.product_texts[i] for i in order[:args.sample]]
    print(f"{len(sample)} product texts, 1 torch thread, max {cfg.text_max_tokens} tokens; "
          f"native bfloat16 on this CPU: {bfloat16_is_native()}")
    features, seconds = {}, {}
    for name, run in encoders.items():
        run(sample[:128])  # warm-up
        started = time.perf_counter()
        features[name] = run(sample)
        seconds[name] = time.perf_counter() - started
        cosine = (features[name] * features["float32"]).sum(1)
        print(f"  {name:<9} {seconds[name]:6.1f} s ({len(sample) / seconds[name]:4.0f} texts/s, "
              f"{1000 * seconds[name] / len(sample):5.2f} ms/text, {seconds['float32'] / seconds[name]:.2f}x); "
              f"cosine to float32: mean {cosine.mean():.5f}, min {cosine.min():.5f}")

    # the champion on the test split (features of the other splits are left as they are)
    test = catalog.rows("test")
    torch.set_num_threads(2)
    vocab_texts = [D.attribute_text(t, v) for t, v in zip(catalog.attribute_types, catalog.attribute_values)]
    variants = {}
    for name in encoders:
        # computed here: the catalog's own features come from the store, in whatever precision built it
        products = catalog.text.clone()
        products[test] = torch.from_numpy(encoders[name]([catalog.product_texts[i] for i in test]))
        vocabulary = torch.from_numpy(encoders[name](vocab_texts))
        if name == "float32":
            variants["float32 (as trained)"] = replace(catalog, text=products, attribute_text=vocabulary)
            continue
        variants[f"{name} products"] = replace(catalog, text=products, attribute_text=variants["float32 (as trained)"].attribute_text)
        variants[f"{name} products + vocabulary"] = replace(catalog, text=products, attribute_text=vocabulary)
    model = served.model
    results = {name: evaluate_model(model, c, "test", served.beta) for name, c in variants.items()}
    print(f"\nchampion v{version}, test split ({len(test)} products): Recall@1 / @5 / @10")
    for mode in ("image_text", "text_only"):
        for name, metrics in results.items():
            cells = " / ".join(f"{metrics[f'test.{mode}.recall_at_{k}']:.3f}" for k in (1, 5, 10))
            print(f"  {mode:<10} {name:<31} {cells}")
    types = sorted({k.split(".")[-1] for k in results["float32 (as trained)"] if k.count(".") == 3})
    print("\nper type, image+text Recall@10: " + " | ".join(results))
    for t in types:
        print(f"  {t:<13} " + " | ".join(f"{m[f'test.image_text.recall_at_10.{t}']:.3f}" for m in results.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
