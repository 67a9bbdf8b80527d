import numpy as np

from ml.dedup import greedy_merge


def _unit(*rows):
    m = np.array(rows, dtype=np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_variants_merge_into_the_most_frequent_value():
    emb = _unit([1, 0, 0], [0.99, 0.05, 0], [0, 1, 0])
    merges = greedy_merge(["round neck", "round-neck collar", "v-neck"], [500, 3, 200], emb, threshold=0.9)
    got = {m.value_key: m.canonical_key for m in merges}
    assert got == {"round neck": "round neck", "round-neck collar": "round neck", "v-neck": "v-neck"}


def test_protected_values_never_merge_into_each_other():
    emb = _unit([1, 0.1, 0], [1, 0.12, 0], [1, 0.11, 0])
    merges = greedy_merge(["short sleeve", "long sleeve", "short sleeves tee"], [900, 800, 2], emb, 0.9,
                          protected=[True, True, False])
    got = {m.value_key: m.canonical_key for m in merges}
    assert got["long sleeve"] == "long sleeve" and got["short sleeve"] == "short sleeve"
    assert got["short sleeves tee"] in {"short sleeve", "long sleeve"}


def test_no_chaining_and_order_independent():
    emb = _unit([1, 0, 0], [0.95, 0.31, 0], [0.8, 0.6, 0])  # a~b, b~c, but a !~ c
    keys, counts = ["a", "b", "c"], [10, 5, 1]
    first = {m.value_key: m.canonical_key for m in greedy_merge(keys, counts, emb, 0.9)}
    perm = [2, 0, 1]
    second = {m.value_key: m.canonical_key for m in greedy_merge([keys[i] for i in perm], [counts[i] for i in perm], emb[perm], 0.9)}
    assert first == second == {"a": "a", "b": "a", "c": "c"}


def test_minilm_loads_offline_and_embeds():
    from ml.embeddings import embed

    vectors = embed(["navy blue", "navy", "running shoes"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
