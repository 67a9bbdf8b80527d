"""Does unfreezing MiniLM's top layer pay? Text-only training, frozen vs adapting text tower.

    .venv/bin/python benchmarks/bench_text_tower.py            # after `make run` (the warehouse's catalog)
    .venv/bin/python benchmarks/bench_text_tower.py --epochs 1 --max-products 3000   # a quick look

Issue #11 asks for a text tower that adapts: unfreeze MiniLM's top layer(s), caching the frozen
lower layers' outputs so the CPU budget holds, or show by measurement why not. This script runs
that measurement on the text path alone (the part of the dual encoder the text tower decides),
with the production model's heads (ml/model.py: per-tower projection + the shared hashed-word bag)
and loss, the same split, seed, products, vocabulary and ground truth as `pinlanding train`
(ml/train.py load_catalog):

- frozen: MiniLM sentence features (the training feature cache) -> heads + word bag; what the
  default model trains today.
- top layer: MiniLM's layers 1-5 run once, their token states cached in float16 (masked to each
  text's length); a trainable copy of layer 6 + mean pooling + L2 norm (MiniLM's own head) makes
  the features, for product and attribute texts alike, then the same heads. At step 0 both arms
  see the same features (checked: the cached path reproduces the frozen features).

Prints per-epoch validation Recall@10 and seconds, then test Recall@1/5/10 (frequency reweighting
tuned on validation, as training does) overall and per attribute type, and the cache's time and size.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))


def lower_layer_states(texts: list[str], max_tokens: int, cache_dir: Path, batch: int = 128):
    """(states (N, T, 384) float16, lengths (N,)): the input of MiniLM's last layer per token,
    from the offline MiniLM package; cached on disk by the texts' hash."""
    from ml.embeddings import load_minilm

    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    path = cache_dir / f"minilm_lower_{max_tokens}_{digest}.pt"
    if path.exists():
        saved = torch.load(path, weights_only=True)
        return saved["states"], saved["lengths"], 0.0
    st = load_minilm()
    bert, tokenizer = st[0].auto_model, st[0].tokenizer
    bert.eval()
    started = time.perf_counter()
    states = torch.zeros(len(texts), max_tokens, bert.config.hidden_size, dtype=torch.float16)
    lengths = torch.zeros(len(texts), dtype=torch.long)
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            enc = tokenizer(texts[start:start + batch], max_length=max_tokens, truncation=True,
                            padding=True, return_tensors="pt")
            # all but the last layer: the embeddings and layers 1..L-1 of MiniLM's encoder
            hidden = bert(**enc, output_hidden_states=True).hidden_states[-2]
            n, t = enc["attention_mask"].shape
            states[start:start + n, :t] = (hidden * enc["attention_mask"][..., None]).half()
            lengths[start:start + n] = enc["attention_mask"].sum(1)
    seconds = time.perf_counter() - started
    cache_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"states": states, "lengths": lengths}, path)
    return states, lengths, seconds


class TopLayer(torch.nn.Module):
    """MiniLM's last encoder layer (a trainable copy) + its mean pooling and normalisation."""

    def __init__(self):
        super().__init__()
        from ml.embeddings import load_minilm

        bert = load_minilm()[0].auto_model
        self.config = bert.config
        self.layer = copy.deepcopy(bert.encoder.layer[-1])

    def forward(self, states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        t = int(lengths.max())
        hidden = states[:, :t].float()
        mask = (torch.arange(t)[None, :] < lengths[:, None]).long()
        attention = create_bidirectional_mask(config=self.config, inputs_embeds=hidden, attention_mask=mask)
        out = self.layer(hidden, attention)
        out = out[0] if isinstance(out, tuple) else out
        pooled = (out * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return F.normalize(pooled, dim=-1)


def run_arm(name: str, catalog, cfg, top: TopLayer | None, states, lengths, attr_states, attr_lengths,
            epochs: int, layer_lr: float) -> dict:
    from ml.evaluate import recall_at_k, reweight, tune_beta
    from ml.model import DualEncoder
    from ml.train import product_tokens, seed_everything

    seed_everything(cfg.seed)
    model = DualEncoder(cfg.model)
    groups = [{"params": [p for n, p in model.named_parameters() if not n.startswith("visual.")],
               "lr": cfg.learning_rate, "weight_decay": cfg.weight_decay}]
    if top is not None:
        groups.append({"params": top.parameters(), "lr": layer_lr, "weight_decay": 0.01})
    optimizer = torch.optim.AdamW(groups)
    words = catalog.attribute_word_texts
    prior = catalog.attribute_log_prior.numpy()

    def product_features(rows):
        return catalog.text[rows] if top is None else top(states[rows], lengths[rows])

    def attribute_features():
        return catalog.attribute_text if top is None else top(attr_states, attr_lengths)

    @torch.no_grad()
    def split_scores(split):
        model.eval()
        if top is not None:
            top.eval()
        attributes = model.encode_vocabulary(attribute_features(), words)
        rows = catalog.rows(split)
        out = [model.encode_product_text(product_features(r), product_tokens(model, catalog, r))
               for r in np.array_split(rows, max(1, len(rows) // 512))]
        model.train()
        if top is not None:
            top.train()
        return (torch.cat(out) @ attributes.T).numpy(), catalog.targets[rows].numpy()

    rng = np.random.default_rng(cfg.seed)
    train_rows = catalog.rows("train")
    history, started = [], time.perf_counter()
    for epoch in range(epochs):
        epoch_started = time.perf_counter()
        order = rng.permutation(train_rows)
        for start in range(0, len(order), cfg.batch_size):
            rows = order[start:start + cfg.batch_size]
            products = model.encode_product_text(product_features(rows), product_tokens(model, catalog, rows))
            attributes = model.encode_vocabulary(attribute_features(), words)
            loss = model.criterion(products, attributes, catalog.targets[rows])["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        val_scores, val_targets = split_scores("validation")  # the last epoch's also tunes beta below
        r10 = recall_at_k(val_scores, val_targets, ks=(10,))["recall_at_10"]
        history.append((r10, time.perf_counter() - epoch_started))
        print(f"  {name}: epoch {epoch + 1}/{epochs} validation text-only R@10 {r10:.4f} "
              f"({history[-1][1]:.0f} s)", flush=True)
    seconds = time.perf_counter() - started
    beta = tune_beta(val_scores, val_targets, prior)
    test_scores, test_targets = split_scores("test")
    test = recall_at_k(reweight(test_scores, prior, beta), test_targets, catalog.attribute_types)
    return {"name": name, "history": history, "seconds": seconds, "beta": beta, "test": test}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-config", default=str(PROJECT_DIR / "ml/configs/default.yaml"))
    parser.add_argument("--epochs", type=int, help="default: the config's")
    parser.add_argument("--max-products", type=int, help="a deterministic subset (the config's rule)")
    parser.add_argument("--layer-lr", type=float, default=5e-5, help="learning rate of the unfrozen layer")
    parser.add_argument("--scratch", default="/tmp/pinlanding-bench-text-tower")
    args = parser.parse_args()

    from pinlanding import settings

    settings.pin_environment()
    from ml.data import attribute_text
    from ml.train import TrainConfig, load_catalog
    from pinlanding.warehouse import spark_session

    cfg = TrainConfig.from_yaml(args.train_config, max_products=args.max_products)
    epochs = args.epochs or cfg.epochs
    spark = spark_session()
    catalog = load_catalog(spark, settings.target_schema(), cfg, settings.data_dir() / "training" / "cache")
    spark.stop()
    attr_texts = [attribute_text(t, v) for t, v in zip(catalog.attribute_types, catalog.attribute_values)]
    print(f"{len(catalog.product_ids):,} products ({', '.join(f'{s} {int((catalog.split == s).sum()):,}' for s in ('train', 'validation', 'test'))}), "
          f"{len(catalog.attribute_ids)} attributes, {epochs} epochs, batch {cfg.batch_size}", flush=True)

    scratch = Path(args.scratch)
    states, lengths, cache_s = lower_layer_states(catalog.product_texts, cfg.text_max_tokens, scratch)
    attr_states, attr_lengths, _ = lower_layer_states(attr_texts, cfg.text_max_tokens, scratch)
    print(f"lower-layer cache: {states.shape[0]:,} texts, mean {lengths.float().mean():.1f} tokens, "
          f"{states.numel() * 2 / 2**30:.2f} GiB float16, {cache_s:.0f} s to compute (0 = read from {scratch})", flush=True)

    top = TopLayer()
    with torch.no_grad():
        probe = np.arange(min(64, len(catalog.product_ids)))
        ours = top(states[probe], lengths[probe])
        theirs = catalog.text[probe]  # MiniLM's sentence features at the same token limit
    drift = float((ours - theirs).norm(dim=1).max())
    print(f"cached path vs the frozen MiniLM features: max L2 difference {drift:.4f} (float16 states)", flush=True)
    if drift > 0.01:
        print("the cached lower layers do not reproduce MiniLM: stop", file=sys.stderr)
        return 1

    arms = [run_arm("frozen", catalog, cfg, None, None, None, None, None, epochs, args.layer_lr),
            run_arm("top layer", catalog, cfg, top, states, lengths, attr_states, attr_lengths, epochs, args.layer_lr)]

    print("\ntest split, text-only (reweighting tuned on validation)")
    print(f"  {'text tower':<28}{'R@1':>8}{'R@5':>8}{'R@10':>8}{'train s':>10}{'val R@10 by epoch':>40}")
    for arm in arms:
        t = arm["test"]
        print(f"  {arm['name']:<28}" + "".join(f"{t[f'recall_at_{k}']:>8.3f}" for k in (1, 5, 10))
              + f"{arm['seconds']:>10.0f}" + "   " + ", ".join(f"{r:.3f}" for r, _ in arm["history"]))
    types = sorted({k.split(".", 1)[1] for k in arms[0]["test"] if k.startswith("recall_at_10.")})
    print(f"\n  {'type (R@10)':<16}" + "".join(f"{a['name']:>12}" for a in arms))
    for t in types:
        print(f"  {t:<16}" + "".join(f"{a['test'][f'recall_at_10.{t}']:>12.3f}" for a in arms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
