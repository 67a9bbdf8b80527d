"""Bidirectional multi-positive contrastive loss (CLIP's InfoNCE, for products with many attributes).

CLIP pairs each image with exactly one caption. A product carries several true attributes
(colour, pattern, article type, ...), so the target is a multi-hot matrix. Each positive pair
(product i, attribute j) is scored against the *negatives* of its row (product->attribute) and of
its column (attribute->product) only: the product's other true attributes are masked out of the
denominator, so positives never compete with each other. Losses are averaged over positive pairs.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def multi_positive_infonce(logits: torch.Tensor, targets: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean over positives of -log(e^l_pos / (e^l_pos + sum_negatives e^l_neg)) along `dim`."""
    positive = targets > 0
    negatives = logits.masked_fill(positive, float("-inf"))
    log_neg = torch.logsumexp(negatives, dim=dim, keepdim=True)          # -inf if a line has no negatives
    per_pair = torch.logaddexp(logits, log_neg) - logits                  # -log p(pos vs negatives)
    return per_pair[positive].mean()


class MultiPositiveClipLoss(nn.Module):
    """logits = exp(t) * P @ A.T with a learnable temperature t (CLIP's init: 1/0.07, capped at 100)."""

    def __init__(self, init_temperature: float = 0.07, max_scale: float = 100.0):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / init_temperature)))
        self.max_log_scale = math.log(max_scale)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def forward(self, products: torch.Tensor, attributes: torch.Tensor, targets: torch.Tensor) -> dict:
        """products: (B, d) and attributes: (V, d), both L2-normalised; targets: (B, V) multi-hot."""
        logits = self.scale() * products @ attributes.T
        p2a = multi_positive_infonce(logits, targets, dim=1)
        a2p = multi_positive_infonce(logits, targets, dim=0)
        return {"loss": (p2a + a2p) / 2, "product_to_attribute": p2a, "attribute_to_product": a2p}
