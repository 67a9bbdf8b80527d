"""Dual encoder pieces: loss, split, evaluation, checkpoint loading, registry round trip."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from ml import data as D
from ml.evaluate import SparseBM25, recall_at_k, recall_ceiling, reweight, tokenize, tune_beta
from ml.loss import MultiPositiveClipLoss, multi_positive_infonce
from ml.model import DualEncoder, DualEncoderConfig

TINY = DualEncoderConfig(embed_dim=16, vision_tower="vit", image_size=16, patch_size=8, vision_width=32,
                         vision_layers=1, vision_heads_width=32, head_hidden=32, token_buckets=64, token_dim=8)
TINY_RESNET = DualEncoderConfig(embed_dim=16, vision_tower="resnet", image_size=32, resnet_width=8,
                                vision_heads_width=32, head_hidden=32, token_buckets=64, token_dim=8)


def _unit(x):
    return F.normalize(torch.as_tensor(x, dtype=torch.float32), dim=-1)


def test_loss_is_symmetric_under_transposition():
    torch.manual_seed(0)
    p, a = _unit(torch.randn(5, 8)), _unit(torch.randn(7, 8))
    y = (torch.rand(5, 7) < 0.3).float()
    y[0, 0] = 1
    loss = MultiPositiveClipLoss()
    forward = loss(p, a, y)
    swapped = loss(a, p, y.T)
    assert torch.isclose(forward["product_to_attribute"], swapped["attribute_to_product"])
    assert torch.isclose(forward["loss"], swapped["loss"])


def test_positives_do_not_compete_with_each_other():
    # Product 0 has two positives with equal logits and one far negative: masking the other
    # positive out of the denominator makes the loss ~0; plain softmax would give log(2).
    logits = torch.tensor([[10.0, 10.0, -10.0]])
    targets = torch.tensor([[1.0, 1.0, 0.0]])
    assert multi_positive_infonce(logits, targets, dim=1) < 1e-6
    plain = -torch.log_softmax(logits, dim=1)[0, :2].mean()
    assert torch.isclose(plain, torch.log(torch.tensor(2.0)), atol=1e-4)


def test_loss_rewards_the_right_assignment():
    p = _unit([[1, 0], [0, 1]])
    a = _unit([[1, 0], [0, 1], [-1, 0]])
    right = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    wrong = torch.tensor([[0, 1.0, 0], [1.0, 0, 0]])
    loss = MultiPositiveClipLoss()
    assert loss(p, a, right)["loss"] < loss(p, a, wrong)["loss"]


def test_temperature_is_learnable_and_capped():
    loss = MultiPositiveClipLoss(init_temperature=0.07, max_scale=100)
    assert torch.isclose(loss.scale(), torch.tensor(1 / 0.07))
    p, a = _unit(torch.randn(4, 8)), _unit(torch.randn(3, 8))
    y = torch.eye(4, 3)
    loss(p, a, y)["loss"].backward()
    assert loss.logit_scale.grad is not None and loss.logit_scale.grad != 0
    with torch.no_grad():
        loss.logit_scale.fill_(10.0)
    assert torch.isclose(loss.scale(), torch.tensor(100.0))


def test_split_is_deterministic_and_roughly_80_10_10():
    ids = [str(i) for i in range(20000)]
    first = [D.split_of(i) for i in ids]
    assert first == [D.split_of(i) for i in ids]
    shares = {s: first.count(s) / len(ids) for s in ("train", "validation", "test")}
    assert abs(shares["train"] - 0.8) < 0.02 and abs(shares["test"] - 0.1) < 0.02


def test_recall_at_k_counts_pairs():
    scores = np.array([[0.9, 0.8, 0.1], [0.1, 0.2, 0.3]])
    targets = np.array([[0, 1, 0], [1, 0, 1]])
    r = recall_at_k(scores, targets, ["colour", "colour", "fit"], ks=(1, 2))
    assert r["recall_at_1"] == pytest.approx(1 / 3)   # only (1, 2) is top-1
    assert r["recall_at_2"] == pytest.approx(2 / 3)
    assert r["recall_at_1.fit"] == 1.0 and r["recall_at_1.colour"] == 0.0


def test_recall_ceiling_is_what_a_perfect_scorer_reaches():
    rng = np.random.default_rng(3)
    targets = (rng.random((40, 12)) < 0.35).astype(int)
    targets[0] = 1                                      # a product with more positives than k
    perfect = targets + 0.01 * rng.random(targets.shape)  # every positive above every negative
    for k in (1, 5, 10):
        assert recall_ceiling(targets, ks=(k,))[f"recall_at_{k}"] == pytest.approx(
            recall_at_k(perfect, targets, ks=(k,))[f"recall_at_{k}"])
        other = rng.random(targets.shape)               # and no scorer without ties passes it
        assert recall_at_k(other, targets, ks=(k,))[f"recall_at_{k}"] <= recall_ceiling(targets, ks=(k,))[f"recall_at_{k}"]
    assert recall_ceiling(targets, ks=(10,))["recall_at_10"] < 1.0
    assert recall_ceiling(np.array([[1, 1, 1, 0], [0, 1, 0, 0]]), ks=(2,))["recall_at_2"] == pytest.approx((2 + 1) / 4)


def test_sparse_bm25_scores_exactly_as_rank_bm25():
    from rank_bm25 import BM25Okapi

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(50)] + ["the"] * 30  # "the" in most documents: negative idf, floored
    texts = [" ".join(rng.choice(words, rng.integers(0, 12))) for _ in range(500)] + ["", "!!!", "W1 w1 the."]
    reference, sparse = BM25Okapi([tokenize(t) or ["_"] for t in texts]), SparseBM25(texts)
    for query in (["w1", "the"], ["w3", "w3", "unknown"], ["the"], ["_"], []):
        ours, theirs = sparse.get_scores(query), reference.get_scores(query)
        # the same formula; only the mean idf's summation order differs (last-bit differences)
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
        assert np.array_equal(np.argsort(-ours, kind="stable")[:10], np.argsort(-theirs, kind="stable")[:10]), query
    assert sparse.get_scores(["w1"]).argmax() == len(texts) - 1  # "W1 w1 the.": most w1 per word


def test_frequency_prior_lifts_common_attributes_and_beta_is_tuned():
    scores = np.array([[0.50, 0.51], [0.50, 0.51]])    # rare attribute 1 slightly ahead
    targets = np.array([[1, 0], [1, 0]])              # but the common attribute 0 is right
    log_prior = np.log(np.array([0.5, 0.01]))
    assert recall_at_k(scores, targets, ks=(1,))["recall_at_1"] == 0.0
    beta = tune_beta(scores, targets, log_prior, grid=(0.0, 0.01), k=1)
    assert beta == 0.01
    assert recall_at_k(reweight(scores, log_prior, beta), targets, ks=(1,))["recall_at_1"] == 1.0


def test_vision_weights_load_from_a_local_open_clip_checkpoint(tmp_path):
    source = DualEncoder(TINY)
    path = tmp_path / "clip.pt"
    torch.save({"state_dict": {f"visual.{k}": v for k, v in source.visual.state_dict().items()}}, path)
    loaded = DualEncoder(DualEncoderConfig(**{**TINY.to_dict(), "pretrained_vision": str(path)}))
    for k, v in source.visual.state_dict().items():
        assert torch.equal(v, loaded.visual.state_dict()[k])
    torch.save({"state_dict": {"visual.conv1.weight": torch.zeros(1)}}, path)
    with pytest.raises((ValueError, RuntimeError)):
        DualEncoder(DualEncoderConfig(**{**TINY.to_dict(), "pretrained_vision": str(path)}))


def _catalog(n_attr=4, split="train", attribute_prefix="attr"):
    texts = ["navy blue cotton tee", "black leather belt", "red floral dress"]
    return D.Catalog(
        product_ids=["1", "2", "3"], product_texts=texts, split=np.array([split] * 3),
        text=torch.from_numpy(D.text_features(texts)), images=torch.zeros(0, 3, 16, 16),
        image_index=np.array([-1, -1, -1]), targets=torch.eye(3, n_attr),
        attribute_ids=[f"{attribute_prefix}_{i}" for i in range(n_attr)], attribute_types=["colour"] * n_attr,
        attribute_values=["navy blue", "black", "red", "green"][:n_attr],
        attribute_aliases=[["Navy Blue", "navy"], ["Black"], ["Red"], ["Green"]][:n_attr],
        attribute_text=torch.from_numpy(D.text_features([f"colour: {v}" for v in ["navy blue", "black", "red", "green"][:n_attr]])),
        attribute_log_prior=torch.log(torch.full((n_attr,), 0.25)),
        products=pd.DataFrame({"product_id": ["1", "2", "3"], "title": texts, "description": [None] * 3,
                               "image_path": [None] * 3}))


def test_pyfunc_round_trip_through_the_registry_and_champion_rule(tmp_path, monkeypatch):
    import mlflow

    from ml.train import REGISTERED_MODEL, register_model

    monkeypatch.setenv("PINLANDING_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from pinlanding.tracking import configure

    configure()
    torch.manual_seed(0)
    model, catalog = DualEncoder(TINY), _catalog()
    client = mlflow.MlflowClient()
    champions = []
    for val_recall in (0.5, 0.4, 0.6):  # the champion moves only to a better validation R@10
        with mlflow.start_run():
            register_model(mlflow, mlflow.active_run().info.run_id, model, catalog, 0.01, val_recall,
                           tmp_path, text_max_tokens=32)
        champions.append(str(client.get_model_version_by_alias(REGISTERED_MODEL, "champion").version))
    assert champions == ["1", "1", "3"]

    loaded = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL}@champion")
    frame = pd.DataFrame({"product_id": ["a", "b"], "title": ["Navy tee", "Belt"],
                          "description": ["cotton", None], "image_path": ["", ""]})
    out = loaded.predict(frame, params={"top_k": 3})
    assert list(out["product_id"]) == ["a", "b"]
    first = json.loads(out["attributes"][0])
    assert len(first) == 3 and set(first[0]) == {"attribute_id", "type", "value", "score"}
    assert first[0]["score"] >= first[1]["score"] >= first[2]["score"]

    # features from the store (by text key) score exactly as features the model embeds itself
    served = loaded.unwrap_python_model()
    texts = [D.product_text(t, d) for t, d in zip(frame["title"], frame["description"])]
    stored = dict(zip(map(D.text_key, texts), D.text_features(texts, max_seq_length=32, persist=False)))
    np.testing.assert_allclose(served.scores(frame, text_features=stored), served.scores(frame), atol=1e-5)
    swapped = {k: stored[other] for k, other in zip(stored, reversed(list(stored)))}
    assert not np.allclose(served.scores(frame, text_features=swapped), served.scores(frame), atol=1e-3)

    # bfloat16 towers (var scoring_precision) score like float32, photos included, and do run
    photos = _photos(tmp_path, 2)
    with_photos = frame.assign(image_path=photos)
    for image_only in (False, True):
        full = served.scores(with_photos, image_only=image_only, text_features=stored)
        half = served.scores(with_photos, image_only=image_only, text_features=stored, bfloat16=True)
        assert half.dtype == full.dtype and half.shape == full.shape
        np.testing.assert_allclose(half, full, atol=0.02)
        assert not np.array_equal(half, full)

    # shipped to Spark workers as bytes: unpacked once per content hash into the temporary
    # directory, where other champions nobody used for a day are removed
    import os
    import tempfile
    import time

    from ml.pyfunc import load_packed, pack_model_dir, resolve_champion

    worker_tmp = tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(worker_tmp))
    stale, recent = worker_tmp / "pinlanding-model-0000000000000000", worker_tmp / "pinlanding-model-1111111111111111"
    for folder in (stale, recent):
        folder.mkdir()
    os.utime(stale, (time.time() - 2 * 86400,) * 2)
    packed = pack_model_dir(resolve_champion()[1])
    # a half-removed leftover under this champion's name (a prune killed midway) is replaced
    import hashlib

    leftover = worker_tmp / f"pinlanding-model-{hashlib.sha256(packed).hexdigest()[:16]}"
    (leftover / "model").mkdir(parents=True)
    (leftover / "model" / "python_model.pkl").write_bytes(b"")
    unpacked = load_packed(packed)
    assert (leftover / "model" / "MLmodel").is_file()
    np.testing.assert_allclose(unpacked.scores(frame, text_features=stored), served.scores(frame, text_features=stored),
                               atol=1e-6)
    assert not stale.exists() and recent.exists()
    assert len(list(worker_tmp.glob("pinlanding-model-*"))) == 2  # the recent one and this champion


def test_served_photo_tower_runs_channels_last_with_batch_norms_folded_and_the_same_embeddings(tmp_path):
    """The served model converts its ResNet to channels-last and folds each BatchNorm into its
    convolution (faster on CPU): the weights must really be in that layout, no BatchNorm may be
    left, and products must embed as the trained model does."""
    from types import SimpleNamespace

    from ml.pyfunc import DualEncoderModel, write_bundle

    torch.manual_seed(0)
    model = DualEncoder(TINY_RESNET)
    # trained-looking statistics: with a fresh BatchNorm's (mean 0, variance 1, scale 1) folding
    # would be nearly the identity, and a wrong fold could pass
    for norm in (m for m in model.visual.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        norm.running_mean.normal_(0, 0.5)
        norm.running_var.uniform_(0.3, 3.0)
        torch.nn.init.normal_(norm.weight, 1.0, 0.3)
        torch.nn.init.normal_(norm.bias, 0.0, 0.3)
    bundle = write_bundle(tmp_path / "bundle", model, _catalog(), beta=0.01, text_max_tokens=32)
    model.eval()  # write_bundle leaves it training (batch norm would use batch statistics)
    served = DualEncoderModel()
    served.load_context(SimpleNamespace(artifacts={"bundle": str(bundle)}))
    conv = served.model.visual.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in served.model.visual.modules())

    photos = _photos(tmp_path, 3)
    frame = pd.DataFrame({"product_id": ["a", "b", "c"], "title": ["Navy tee", "Belt", "Dress"],
                          "description": [None] * 3, "image_path": [photos[0], "", photos[2]]})
    texts = [D.product_text(t, None) for t in frame["title"]]
    features = D.text_features(texts, max_seq_length=32, persist=False)
    stored = dict(zip(map(D.text_key, texts), features))
    has = torch.tensor([True, False, True])
    images = torch.stack([D.load_image(p, TINY_RESNET.image_size) for p in (photos[0], photos[2])])
    with torch.no_grad():
        expected = model.encode_product(torch.from_numpy(features), images, has, model.tokenize(texts)).numpy()
        image_only = model.encode_image(images).numpy()
    np.testing.assert_allclose(served.embed_products(frame, text_features=stored), expected, atol=1e-5)
    np.testing.assert_allclose(served.embed_products(frame, image_only=True)[[0, 2]], image_only, atol=1e-5)


def test_text_features_embed_only_what_is_not_known(monkeypatch):
    import ml.embeddings

    embedded = []
    real = ml.embeddings.embed
    monkeypatch.setattr(ml.embeddings, "embed", lambda texts, **kw: embedded.extend(texts) or real(texts, **kw))
    texts = ["red floral dress. summer", "black leather belt.", "red floral dress. summer"]
    known = {D.text_key(texts[0]): np.full(384, 0.5, dtype=np.float32)}
    out = D.text_features(texts, None, 64, persist=False, known=known)
    assert embedded == ["black leather belt."]  # once, and never the known text
    assert np.array_equal(out[0], known[D.text_key(texts[0])]) and np.array_equal(out[0], out[2])
    assert abs(float(np.linalg.norm(out[1])) - 1.0) < 1e-5
    assert D.text_encoder(64) != D.text_encoder(32)  # another token limit is another encoder


def test_spark_product_text_and_hash_equal_pythons_on_hostile_texts(spark):
    """The store and scoring hash texts in the JVM (ml/data.py product_text_columns); training looks
    features up by the Python text_key. Every character str.strip() removes, at both ends."""
    import sys

    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    rows = [("Red Dress", None), (None, None), ("", ""), (None, "only a description"),
            ("Émilie 👗 robe", "ü" * 150 + "😀" * 100),  # multi-byte and astral: 200 code points, not bytes
            ("Tab\tinside", " x" * 150), ("trailing", "y" * 199 + " z"), ("ends at 200 ", "w" * 199 + " ")]
    rows += [(f"{s}Lead {i}", f"tail{s}") for i, s in enumerate(spaces)]
    rows += [(f"{s}{s}", s) for s in spaces] + [(f"Title{s}", None) for s in spaces]
    rows += [("\u200bzero width is not a space", "\ufeff"), ("line\nbreak", "\r\n")]
    frame = spark.createDataFrame(rows, "title string, description string")
    text, text_hash = D.product_text_columns()
    got = frame.select("title", "description", text.alias("text"), text_hash.alias("text_hash")).collect()
    assert len(got) == len(rows)
    for row in got:
        expected = D.product_text(row["title"] or "", row["description"])
        assert (row["text"], row["text_hash"]) == (expected, D.text_key(expected)), (row["title"], row["description"])


def _photos(folder, n: int) -> list[str]:
    """n distinct 224-px JPEG photos (the catalog's size): smooth colour fields, like product shots."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
        paths.append(str(folder / f"photo{i}.jpg"))
        coarse.resize((224, 224), Image.BICUBIC).save(paths[-1], quality=90)
    return paths


def test_photos_decode_at_a_reduced_scale_close_to_a_full_decode(tmp_path):
    from PIL import Image

    jpeg = _photos(tmp_path, 1)[0]
    with Image.open(jpeg) as image:
        full = np.asarray(image.convert("RGB").resize((96, 96), Image.BICUBIC), dtype=np.float32)
    drafted = (D.load_image(jpeg, 96) * D.STD + D.MEAN).permute(1, 2, 0).numpy() * 255
    assert drafted.shape == (96, 96, 3)
    assert np.abs(drafted - full).mean() < 3  # of 255 (catalog photos: 1.05): DCT-scaled decode, same resize
    assert np.abs(drafted - full).max() > 1  # and it did decode at the reduced scale
    png = tmp_path / "photo.png"  # draft mode is JPEG-only: other formats decode in full
    Image.open(jpeg).save(png)
    assert D.load_image(str(png), 96).shape == (3, 96, 96)


def test_bfloat16_features_agree_with_float32():
    from ml.embeddings import embed

    texts = ["Men Navy Blue Solid Polo T-shirt. Cotton, regular fit", "Women Red Floral Maxi Dress", "Black Belt"]
    full, half = embed(texts), embed(texts, bfloat16=True)
    assert half.dtype == np.float32 and half.shape == full.shape
    assert ((full * half).sum(1) > 0.999).all()  # what the feature store relies on (cosine 0.99998 measured)
    assert not np.array_equal(full, half)  # and bfloat16 did run


@pytest.mark.parametrize("cfg", [TINY, TINY_RESNET], ids=["vit", "resnet"])
def test_encode_product_fuses_only_the_rows_with_a_photo(cfg):
    torch.manual_seed(0)
    model = DualEncoder(cfg).eval()
    texts = ["navy blue cotton tee", "black leather belt", "red floral dress"]
    features = torch.from_numpy(D.text_features(texts))
    tokens = model.tokenize(texts)
    has = torch.tensor([True, False, True])
    images = torch.randn(2, 3, cfg.image_size, cfg.image_size)
    with torch.no_grad():
        out = model.encode_product(features, images, has, tokens)
        text = model.encode_product_text(features, tokens)
        fused = model.encode_product(features[has], images, None, model.tokenize([texts[0], texts[2]]))
    assert out.shape == (3, cfg.embed_dim)
    assert torch.allclose(out[1], text[1])                      # no photo: the text embedding
    assert torch.allclose(out[has], fused, atol=1e-6)           # photo: image and text fused
    assert not torch.allclose(out[0], text[0])
    assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError, match="2 rows with a photo but 1 images"):
        model.encode_product(features, images[:1], has, tokens)


def test_word_bag_hashing_is_stable_and_shared_by_both_towers():
    ids, offsets = D_hashed(["Navy  navy TEE", "", "tee"])
    assert offsets.tolist() == [0, 2, 2]                          # distinct words; an empty text is an empty bag
    assert ids[:2].tolist() == sorted(ids[:2].tolist()) and ids[2] in ids[:2]
    model = DualEncoder(TINY)
    assert model.encode_product_text(torch.zeros(1, 384), model.tokenize(["navy"])).shape == (1, 16)
    assert model.encode_attributes(torch.zeros(1, 384), model.tokenize(["colour navy"])).shape == (1, 16)


def D_hashed(texts):
    from ml.model import hashed_words

    return hashed_words(texts, 1 << 20)


def test_configs_saved_before_new_settings_still_load():
    legacy = {k: v for k, v in TINY.to_dict().items() if k not in ("vision_tower", "token_buckets")}
    cfg = DualEncoderConfig.from_dict(legacy)
    assert cfg.vision_tower == "vit" and cfg.token_buckets == 0
    model = DualEncoder(cfg).eval()
    # and they still score: no word bag, so the text towers are the MiniLM heads alone
    texts = ["navy blue cotton tee", "black leather belt"]
    assert model.tokenize(texts) is None
    features = torch.from_numpy(D.text_features(texts))
    with torch.no_grad():
        products = model.encode_product(features, torch.randn(1, 3, cfg.image_size, cfg.image_size),
                                        torch.tensor([True, False]), model.tokenize(texts))
        attributes = model.encode_vocabulary(torch.zeros(3, 384), ["colour navy", "colour black", "type belt"])
        bare_tokens = model.encode_product_text(features, D_hashed(texts))  # tokens given anyway: ignored
    assert products.shape == (2, cfg.embed_dim) and attributes.shape == (3, cfg.embed_dim)
    assert torch.allclose(bare_tokens, model.encode_product_text(features, None))


def test_augment_keeps_shape_and_colour():
    torch.manual_seed(0)
    images = torch.zeros(4, 3, 32, 32)
    images[:, 0] = 1.0                                             # a flat red photo stays flat red
    out = D.augment(images)
    assert out.shape == images.shape and torch.allclose(out, images, atol=1e-5)
    stripes = torch.zeros(8, 3, 32, 32)
    stripes[..., :16] = 1.0
    assert not torch.equal(D.augment(stripes), stripes)           # crops and flips change the view


def test_champion_is_compared_on_the_candidate_validation_set(tmp_path, monkeypatch):
    import mlflow

    from ml.registry import REGISTERED_MODEL, champion_version
    from ml.train import register_model

    monkeypatch.setenv("PINLANDING_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from pinlanding.tracking import configure

    configure()
    torch.manual_seed(0)
    model = DualEncoder(TINY)
    old = _catalog(split="validation")
    with mlflow.start_run():
        register_model(mlflow, mlflow.active_run().info.run_id, model, old, 0.0, 0.99, tmp_path, 32)
    assert str(champion_version().version) == "1"
    # Same validation set, worse number: the tags compare and the champion stays.
    with mlflow.start_run():
        register_model(mlflow, mlflow.active_run().info.run_id, model, old, 0.0, 0.5, tmp_path, 32)
    assert str(champion_version().version) == "1"
    # A new vocabulary: 0.3 is below the champion's own 0.99, but that 0.99 was measured on other
    # attributes. Re-scored on this set the champion knows none of them (R@10 0), so 0.3 wins.
    new = _catalog(split="validation", attribute_prefix="renamed")
    with mlflow.start_run():
        register_model(mlflow, mlflow.active_run().info.run_id, model, new, 0.0, 0.3, tmp_path, 32)
    client = mlflow.MlflowClient()
    assert str(champion_version().version) == "3"
    assert float(client.get_model_version(REGISTERED_MODEL, "3").tags["champion_recall_at_10_same_split"]) == 0.0
    # Same vocabulary as the old champion again (v1's set): v1 is re-scored, not trusted by tag.
    with mlflow.start_run():
        register_model(mlflow, mlflow.active_run().info.run_id, model, _catalog(split="validation", n_attr=3),
                       0.0, 0.2, tmp_path, 32)
    assert float(client.get_model_version(REGISTERED_MODEL, "4").tags["champion_recall_at_10_same_split"]) == 0.0


def test_an_unreadable_registry_is_an_error_not_no_champion(tmp_path, monkeypatch):
    import mlflow

    from ml.registry import champion_version

    broken = tmp_path / "mlflow.db"
    broken.write_bytes(b"this is not a sqlite database" * 100)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{broken}")
    mlflow.set_tracking_uri(f"sqlite:///{broken}")
    with pytest.raises(Exception):
        champion_version()
    empty = tmp_path / "empty"
    empty.mkdir()
    mlflow.set_tracking_uri(f"sqlite:///{empty / 'mlflow.db'}")
    assert champion_version() is None                              # a readable registry without the model


def test_pinlanding_run_builds_the_text_store_at_the_token_limit_scoring_reads(tmp_path, monkeypatch, capsys):
    """The store is keyed by the token limit: `pinlanding run` builds it at the champion's (else the
    training config's), so scoring finds the features instead of embedding every text again."""
    import mlflow
    import yaml

    from ml.train import register_model
    from pinlanding.cli import with_store_token_limit
    from pinlanding.settings import PROJECT_DIR

    monkeypatch.setenv("PINLANDING_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tiny, default = str(PROJECT_DIR / "ml/configs/tiny.yaml"), str(PROJECT_DIR / "ml/configs/default.yaml")
    # no champion yet: the run trains the config's model first, so the store takes its limit (tiny: 32)
    dbt_vars, limit, source = with_store_token_limit("{llm_sample_size: 20}", tiny)
    assert (yaml.safe_load(dbt_vars), limit) == ({"llm_sample_size": 20, "text_max_tokens": 32}, 32)
    assert "tiny.yaml" in source
    assert with_store_token_limit("  ", default)[:2] == ("{text_max_tokens: 64}", 64)
    assert with_store_token_limit("{text_max_tokens: 48}", tiny)[:2] == ("{text_max_tokens: 48}", 48)
    for bad, message in (("[1, 2]", "YAML mapping"), ("{a: [", "not valid YAML"),
                         ("{text_max_tokens: null}", "positive integer"), ("{text_max_tokens: '32'}", "positive integer")):
        with pytest.raises(SystemExit, match=message):
            with_store_token_limit(bad, tiny)

    from pinlanding.tracking import configure

    configure()
    with mlflow.start_run():
        mlflow.log_param("text_max_tokens", 40)
        register_model(mlflow, mlflow.active_run().info.run_id, DualEncoder(TINY), _catalog(split="validation"),
                       0.0, 0.9, tmp_path, 40)
    # a champion exists: its limit wins over the training config's (64 in default.yaml)
    dbt_vars, limit, source = with_store_token_limit(None, default)
    assert (yaml.safe_load(dbt_vars), limit, source) == ({"text_max_tokens": 40}, 40, "the champion model's")
    capsys.readouterr()
    assert with_store_token_limit("{text_max_tokens: 40}", default)[1] == 40
    assert "differs" not in capsys.readouterr().err
    assert with_store_token_limit("{text_max_tokens: 48}", default)[1] == 48  # the user's word, with a warning
    assert "text_max_tokens 48 differs from the champion's 40" in capsys.readouterr().err


def _scoring_model_module():
    """python_models/matching/product_attribute_scores.py (a dbt Python model, not a package module)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "python_models" / "matching" / "product_attribute_scores.py"
    spec = importlib.util.spec_from_file_location("product_attribute_scores", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scoring_rows_are_each_products_top_k_attributes_best_first():
    from datetime import datetime

    scoring = _scoring_model_module()
    rng = np.random.default_rng(0)
    n, vocabulary, k = 25, 500, 60  # a K where numpy's partial selection does not come out sorted
    vocab = {key: np.array([f"{key}{j}" for j in range(vocabulary)], dtype=object) for key in ("ids", "types", "values")}
    chunk = pd.DataFrame({"product_id": [f"p{i}" for i in range(n)], "content_hash": [f"h{i}" for i in range(n)]})
    scores = rng.normal(size=(n, vocabulary)).astype(np.float32)
    at = datetime(2026, 11, 23, 12, 0)
    rows = scoring.top_k_rows(chunk, scores, k, "3", vocab, at)

    assert list(rows.columns) == scoring.COLUMNS and len(rows) == n * k
    for pid, got in rows.groupby("product_id", sort=False):
        row = int(pid[1:])
        best = np.argsort(-scores[row])[:k]  # the row-by-row reference: a full sort per product
        assert got["attribute_id"].tolist() == [f"ids{j}" for j in best]
        assert got["value"].tolist() == [f"values{j}" for j in best]
        assert got["rank"].tolist() == list(range(1, k + 1))
        np.testing.assert_allclose(got["score"], scores[row, best])
        assert set(got["content_hash"]) == {f"h{row}"}
    assert set(rows["model_version"]) == {"3"} and (rows["scored_at"] == pd.Timestamp(at)).all()
    # a top K larger than the vocabulary keeps every attribute, still best first
    everything = scoring.top_k_rows(chunk.iloc[:2], scores[:2, :40], 100, "3", vocab, at)
    assert len(everything) == 80 and everything["rank"].max() == 40
    assert everything.groupby("product_id")["score"].apply(lambda s: s.is_monotonic_decreasing).all()
    assert scoring.top_k_rows(chunk.iloc[:0], scores[:0], k, "3", vocab, at).empty
    assert scoring.top_k_rows(chunk, scores, 0, "3", vocab, at).empty


def test_scoring_joins_the_feature_store_with_one_exchange_per_side(spark):
    """The store join's output is what the scoring tasks read: each product once, with its features
    (null where the store has none), in the requested partitions, and no shuffle beyond the one
    per side (a repartition after the join re-shuffled every product's features)."""
    scoring = _scoring_model_module()
    titles = ["Red Dress", "Blue Jeans", "Red Dress", "Green Scarf", "Black Belt"]
    products = spark.createDataFrame(
        [(f"p{i}", t, "desc" if i != 4 else None, None, f"c{i}") for i, t in enumerate(titles)],
        ",".join(scoring.PRODUCT_COLUMNS))
    known = {D.text_key(D.product_text(t, "desc")): [float(i)] * 3 for i, t in enumerate(titles[:2])}
    stored = spark.createDataFrame([(h, f) for h, f in known.items()] + [(next(iter(known)), [9.0] * 3)],
                                   "text_hash string, features array<float>")  # a duplicate store row
    joined = scoring.with_stored_features(products, stored, partitions=3)
    plan = joined._jdf.queryExecution().executedPlan().toString()
    assert plan.count("Exchange") == 2 and plan.count("REPARTITION_BY_NUM") == 2, plan
    assert joined.rdd.getNumPartitions() == 3
    rows = {r["product_id"]: r for r in joined.collect()}
    assert sorted(rows) == [f"p{i}" for i in range(5)]  # each product once, a duplicate store row or not
    for i, t in enumerate(titles):
        key = D.text_key(D.product_text(t, "desc" if i != 4 else None))
        assert rows[f"p{i}"]["text_hash"] == key
        assert (rows[f"p{i}"]["features"] is None) == (key not in known)
    assert rows["p0"]["features"] == rows["p2"]["features"]  # same text, same stored features
