"""Per-type calibration of single-valued types: does a softmax within the type beat the raw score?

    .venv/bin/python benchmarks/bench_type_calibration.py      # after `make run` (a champion + warehouse)

Scores the validation and test splits with the champion (image+text and image-only) and compares
two assignment rules for the single-valued types (seed attribute_types: one article type, one base
colour, ...), the multi-valued types unchanged:

- served (models/matching/product_attributes_assigned.sql): the type's best value when its
  reweighted score reaches the type's threshold (dbt var assignment_thresholds);
- calibrated: the same, and the value's probability within its type, softmax(scale x score) over
  the type's values with the trained temperature, reaches p_min.

Printed per rule and type: attributes assigned, precision and recall against the merchant's data,
on products whose merchant data states that type (elsewhere an assignment cannot be judged).

Then the collections downstream: precision@10 over each published feed's first 10 test-split
products (collection_precision's `unseen` measure) when the calibrated rule would have dropped
those whose single-valued collection attribute falls below p_min (the products behind them move
up; the rule only removes assignments, so no product joins a feed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))
sys.path.insert(0, str(PROJECT_DIR / "benchmarks"))


def assign_served(scores: np.ndarray, types: np.ndarray, single: set[str], thresholds: dict) -> np.ndarray:
    assigned = np.zeros_like(scores, dtype=bool)
    for t in np.unique(types):
        cols = np.flatnonzero(types == t)
        block = scores[:, cols]
        threshold = thresholds.get(t, thresholds["default"])
        if t in single:
            best = block.argmax(1)
            ok = block[np.arange(len(block)), best] >= threshold
            assigned[np.flatnonzero(ok), cols[best[ok]]] = True
        else:
            assigned[:, cols] = block >= threshold
    return assigned


def type_probabilities(scores: np.ndarray, types: np.ndarray, scale: float) -> np.ndarray:
    probs = np.zeros_like(scores)
    for t in np.unique(types):
        cols = np.flatnonzero(types == t)
        logits = scale * scores[:, cols]
        logits -= logits.max(1, keepdims=True)
        e = np.exp(logits)
        probs[:, cols] = e / e.sum(1, keepdims=True)
    return probs


def judge(assigned: np.ndarray, targets: np.ndarray, types: np.ndarray) -> dict:
    out = {}
    for t in np.unique(types):
        cols = np.flatnonzero(types == t)
        a, g = assigned[:, cols], targets[:, cols] > 0
        stated = g.any(1)
        n, tp = int(a[stated].sum()), int((a & g)[stated].sum())
        out[t] = {"assigned": n, "correct": tp, "precision": tp / n if n else None, "recall": tp / max(int(g.sum()), 1)}
    n = sum(v["assigned"] for v in out.values())
    tp = sum(v["correct"] for v in out.values())
    out["all types"] = {"assigned": n, "precision": tp / n if n else None,
                        "recall": float((assigned & (targets > 0)).sum() / max((targets > 0).sum(), 1))}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--p-min", type=float, nargs="+", default=[0.5, 0.7, 0.9])
    parser.add_argument("--train-config", default=str(PROJECT_DIR / "ml/configs/default.yaml"))
    args = parser.parse_args()

    from pinlanding import settings

    settings.pin_environment()
    from ml.evaluate import reweight
    from ml.train import scores_for

    from champion_catalog import champion_and_catalog

    version, served, catalog, spark = champion_and_catalog(args.train_config)
    schema = settings.target_schema()
    single = {r.attribute_type for r in spark.sql(
        f"select attribute_type from {schema}.attribute_types where single_valued").collect()}
    collections = spark.sql(f"select collection_id, attribute_ids, attribute_types from {schema}.collections "
                            "where status = 'published'").toPandas()
    unseen_feeds = spark.sql(f"select collection_id, product_id, position from {schema}.collection_feeds "
                             "where model_split = 'test' order by collection_id, position").toPandas()
    merchant = spark.sql(f"select product_id, attribute_id from {schema}.product_attributes_curated "
                         "where array_contains(source_backends, 'catalog')").toPandas()
    spark.stop()
    thresholds = settings.project_var("assignment_thresholds")
    types = np.array(catalog.attribute_types)
    scale = float(served.model.criterion.scale().detach())
    prior = catalog.attribute_log_prior.numpy()
    print(f"champion v{version}: softmax scale {scale:.1f} (trained temperature {1 / scale:.4f}); "
          f"single-valued types: {', '.join(sorted(single))}")
    for split in ("validation", "test"):
        for mode in ("image_text", "image_only"):
            cosine, targets, rows = scores_for(served.model, catalog, split, mode)
            scores = reweight(cosine, prior, served.beta)
            base = assign_served(scores, types, single, thresholds)
            probs = type_probabilities(scores, types, scale)
            if (split, mode) == ("test", "image_text"):
                test_probs, test_rows = probs, rows
            rules = {"served": judge(base, targets, types)}
            for p_min in args.p_min:
                calibrated = base & ~(np.isin(types, list(single))[None, :] & (probs < p_min))
                rules[f"p>={p_min}"] = judge(calibrated, targets, types)
            print(f"\n{split}, {mode} ({len(scores)} products): precision / recall (attributes assigned)")
            print(f"  {'type':<13}" + "".join(f"{name:>26}" for name in rules))
            for t in [*sorted(single), "all types"]:
                cells = []
                for rule in rules.values():
                    r = rule[t]
                    p = "  n/a" if r["precision"] is None else f"{r['precision']:.3f}"
                    cells.append(f"{p} / {r['recall']:.3f} ({r['assigned']:>6})")
                print(f"  {t:<13}" + "".join(f"{c:>26}" for c in cells))
    feed_precision(collections, unseen_feeds, merchant, test_probs, test_rows, catalog, single, args.p_min)
    return 0


def feed_precision(collections, unseen_feeds, merchant, probs, rows, catalog, single, p_mins) -> None:
    truth = merchant.groupby("product_id")["attribute_id"].agg(set).to_dict()
    row_of = {catalog.product_ids[r]: i for i, r in enumerate(rows)}
    col_of = {a: j for j, a in enumerate(catalog.attribute_ids)}
    types = np.array(catalog.attribute_types)
    # the value each single-valued type assigns (its best): only those can be removed by the rule;
    # a partial match lacks one collection attribute, and a rule cannot remove what is not assigned
    best = {t: np.flatnonzero(types == t)[probs[:, types == t].argmax(1)] for t in single if (types == t).any()}
    feeds = unseen_feeds.groupby("collection_id")["product_id"].agg(list).to_dict()
    print("\ncollections: precision@10 over each published feed's first 10 test-split products (image+text)")
    for p_min in [0.0, *p_mins]:
        precisions = []
        for c in collections.itertuples(index=False):
            kept = []
            for product in feeds.get(c.collection_id, []):
                i = row_of.get(product)
                dropped = i is not None and any(
                    t in best and a in col_of and best[t][i] == col_of[a] and probs[i, col_of[a]] < p_min
                    for a, t in zip(c.attribute_ids, c.attribute_types))
                if not dropped:
                    kept.append(product)
                if len(kept) == 10:
                    break
            if kept:
                precisions.append(np.mean([set(c.attribute_ids) <= truth.get(p, set()) for p in kept]))
        label = "served" if p_min == 0.0 else f"p>={p_min}"
        print(f"  {label:<8} {np.mean(precisions):.3f} over {len(precisions)} collections with an unseen product")

if __name__ == "__main__":
    sys.exit(main())
