"""Semantic deduplication of attribute values within one type.

Greedy, most frequent first: each value joins the most similar canonical value already chosen
if the cosine similarity reaches the threshold, otherwise it becomes a canonical value itself.
Unlike connected components this never chains (a~b, b~c does not merge a with c unless c is
close to a's canonical), and the result does not depend on input order.

Protected values (ones the merchant's structured data uses) never merge into each other: MiniLM
puts "long sleeves" and "short sleeves" at cosine 0.92, yet the merchant lists them as different
values. Dedup folds the variants that extraction produces onto those values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Merge:
    value_key: str
    canonical_key: str
    similarity: float


def greedy_merge(keys: list[str], counts: list[int], embeddings: np.ndarray, threshold: float,
                 protected: list[bool] | None = None) -> list[Merge]:
    protected = protected or [False] * len(keys)
    order = sorted(range(len(keys)), key=lambda i: (-int(protected[i]), -counts[i], keys[i]))
    canonical: list[int] = []
    merges: list[Merge] = []
    for i in order:
        if canonical and not protected[i]:
            sims = embeddings[canonical] @ embeddings[i]
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                merges.append(Merge(keys[i], keys[canonical[best]], round(float(sims[best]), 4)))
                continue
        canonical.append(i)
        merges.append(Merge(keys[i], keys[i], 1.0))
    return merges
