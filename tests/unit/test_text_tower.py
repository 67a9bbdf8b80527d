"""The unfrozen-top-layer text tower of benchmarks/bench_text_tower.py: MiniLM's lower layers cached
in float16 plus a trainable copy of its last layer must give, before training, the very features the
frozen tower trains on (ml/data.py text_features at the same token limit); else the benchmark would
compare two different starting points."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_text_tower as btt  # noqa: E402
from ml.data import text_features  # noqa: E402

TEXTS = [
    "Puma Men Navy Blue Round Neck T-shirt. Regular fit, short sleeves, cotton jersey with a printed logo",
    "Nike Women Black Running Shoes. Mesh upper",
    "Red floral maxi dress with a v-neck and flared hem. " + "Soft viscose, lined, side zip. " * 8,  # > 64 tokens
    "x",
]


def test_cached_lower_layers_and_top_layer_reproduce_the_frozen_features(tmp_path):
    states, lengths, _ = btt.lower_layer_states(TEXTS, 64, tmp_path)
    assert states.dtype == torch.float16 and states.shape[:2] == (len(TEXTS), 64)
    assert int(lengths[2]) == 64 and int(lengths[3]) < 8  # truncated at the limit; short text short
    assert not states[3, int(lengths[3]):].any()  # padding carries nothing
    top = btt.TopLayer().eval()
    with torch.no_grad():
        ours = top(states, lengths)
    frozen = torch.from_numpy(text_features(TEXTS, None, 64))
    assert (ours - frozen).norm(dim=1).max() < 2e-3

    again, _, seconds = btt.lower_layer_states(TEXTS, 64, tmp_path)  # read back from the cache
    assert seconds == 0.0 and torch.equal(again, states)


def test_top_layer_is_a_trainable_copy():
    from ml.embeddings import load_minilm

    top = btt.TopLayer()
    original = load_minilm()[0].auto_model.encoder.layer[-1]
    assert all(p.requires_grad for p in top.parameters())
    first = next(top.parameters())
    with torch.no_grad():
        first.add_(1.0)
    assert not torch.equal(first, next(original.parameters()))  # MiniLM itself stays frozen
