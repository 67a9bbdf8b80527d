"""The synthetic catalog generator (benchmarks/synthetic_catalog.py) on a small long-tailed
stand-in for the real feed: unique ids, the real skew kept, photo share, photos that pass the
staging checks, determinism, and the incremental day's changed share."""

from __future__ import annotations

import gzip
import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import synthetic_catalog as synth  # noqa: E402
from pinlanding.images import check_image  # noqa: E402

TYPES = ["Tshirts", "Shirts", "Jeans", "Watches", "Socks", "Belts", "Caps", "Ties"]
COLOURS = ["Black", "White", "Blue", "Red", "Green"]
BRANDS = ["Nike", "Puma", "Levis", "Titan", "Arrow"]


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory) -> Path:
    """A 600-product feed whose article types and colours follow a steep long tail (type k has
    ~1/k^1.5 of the products), with a photo for a quarter of them."""
    root = tmp_path_factory.mktemp("real")
    (root / "images").mkdir()
    photo = root / "photo.jpg"
    Image.new("RGB", (40, 40), (200, 30, 30)).save(photo, "JPEG")
    weights = [1 / (k + 1) ** 1.5 for k in range(len(TYPES))]
    counts = [max(3, round(600 * w / sum(weights))) for w in weights]
    rows, pid = [], 1000
    for t, count in zip(TYPES, counts):
        for j in range(count):
            pid += 1
            colour = COLOURS[min(int((j * 7919) % 100 / 100 * 100 ** 0.5) // 2, len(COLOURS) - 1)]
            brand = BRANDS[(pid * 31) % len(BRANDS)]
            image = None
            if pid % 4 == 0:
                image = f"images/{pid}.jpg"
                (root / image).write_bytes(photo.read_bytes())
            rows.append({"product_id": str(pid), "title": f"{brand} Men {colour} {t}", "brand": brand,
                         "gender": "Men", "master_category": "Apparel", "sub_category": "Topwear",
                         "article_type": t, "base_colour": colour, "season": "Summer", "year": 2012,
                         "usage": "Casual", "price": 500 + pid % 700,
                         "description": f"A {colour.lower()} {t.lower()} from {brand}, cotton.",
                         "merchant_attributes": {"Fabric": ["Cotton", "Polyester"][pid % 2], "Fit": "Regular Fit"},
                         "image": image})
    photo.unlink()
    with gzip.open(root / synth.FEED, "wt", encoding="utf-8") as feed:
        feed.writelines(json.dumps(r) + "\n" for r in rows)
    return root


@pytest.fixture(scope="module")
def real(real_dir):
    return synth.RealCatalog(real_dir)


def read_feed(directory: Path) -> list[dict]:
    with gzip.open(directory / synth.FEED, "rt", encoding="utf-8") as feed:
        return [json.loads(line) for line in feed]


def test_ids_unique_sorted_and_products_coherent(real, tmp_path):
    synth.generate(real, tmp_path / "cat", 5000, seed=1)
    rows = read_feed(tmp_path / "cat")
    ids = [r["product_id"] for r in rows]
    assert len(rows) == 5000 and len(set(ids)) == 5000 and ids == sorted(ids)
    real_ids = {r["product_id"] for r in real.rows}
    assert not real_ids & set(ids)
    brands_by_type = {}
    for r in real.rows:
        brands_by_type.setdefault(r["article_type"], set()).add(r["brand"])
    for r in rows:
        # the brand comes from a product of the same article type and is the one the title names
        assert r["brand"] in brands_by_type[r["article_type"]]
        assert r["title"].startswith(r["brand"] + " ")
        assert r["brand"] in r["description"]
        assert r["base_colour"] in r["title"]
    prices = Counter(r["price"] for r in rows)
    assert len(prices) > 500  # jittered, not copied


def test_real_skew_reproduced(real, tmp_path):
    manifest = synth.generate(real, tmp_path / "cat", 20000, seed=2)
    rows = read_feed(tmp_path / "cat")
    types = Counter(r["article_type"] for r in rows)
    real_types = Counter(real.article_type)
    # the head dominates as in the real feed: the most popular type is the same and its share matches
    assert types.most_common(1)[0][0] == real_types.most_common(1)[0][0]
    head_share = types.most_common(1)[0][1] / len(rows)
    assert head_share == pytest.approx(real_types.most_common(1)[0][1] / len(real.rows), abs=0.02)
    assert head_share > 3 / len(TYPES)  # far from uniform
    assert manifest["distribution"]["article_type"]["total_variation"] < 0.03
    zipf = manifest["distribution"]["article_type"]
    assert zipf["zipf_exponent_synthetic"] == pytest.approx(zipf["zipf_exponent_real"], abs=0.15)
    # inside a stratum a few source products spawn many variants (Zipf), yet most are used
    assert manifest["distribution"]["source_products"]["distinct_used"] > 0.8 * len(real.rows)
    assert manifest["distribution"]["source_products"]["top1pct_sources_share_of_products"] > 0.03


def test_photo_share_and_photos_pass_staging_checks(real, tmp_path):
    out = tmp_path / "cat"
    synth.generate(real, out, 4000, seed=3, photo_share=0.2)
    rows = read_feed(out)
    with_photo = [r for r in rows if r["image"]]
    assert len(with_photo) / len(rows) == pytest.approx(0.2, abs=0.03)
    real_photo_types = {r["article_type"] for r in real.rows if r["image"]}
    for r in with_photo[:200]:
        assert r["image"] == f"images/{r['product_id']}.jpg"
        assert r["article_type"] in real_photo_types
        check = check_image(out, r["image"])
        assert check.status == "valid", check.reject_detail  # a hard link is inside the catalog dir
    assert len(list((out / "images").iterdir())) == len(with_photo)


def test_deterministic_for_a_seed(real, tmp_path):
    synth.generate(real, tmp_path / "a", 3000, seed=7)
    synth.generate(real, tmp_path / "b", 3000, seed=7)
    synth.generate(real, tmp_path / "c", 3000, seed=8)
    a, b, c = (gzip.decompress((tmp_path / d / synth.FEED).read_bytes()) for d in "abc")
    assert a == b
    assert a != c


def test_shards_are_the_same_feed_split_in_order(real, tmp_path):
    synth.generate(real, tmp_path / "one", 3001, seed=7)
    synth.generate(real, tmp_path / "sharded", 3001, seed=7, shards=4)
    names = sorted(p.name for p in (tmp_path / "sharded").glob("products*.jsonl.gz"))
    assert names == [f"products-0000{k}.jsonl.gz" for k in range(1, 5)]  # no products.jsonl.gz beside them
    parts = [gzip.decompress((tmp_path / "sharded" / n).read_bytes()) for n in names]
    assert b"".join(parts) == gzip.decompress((tmp_path / "one" / synth.FEED).read_bytes())
    assert [p.count(b"\n") for p in parts] == [750, 750, 750, 751]
    with pytest.raises(ValueError, match="sharded"):
        synth.incremental(real, tmp_path / "sharded", tmp_path / "day2", changed_share=0.01)


def test_incremental_day_changes_the_requested_share(real, tmp_path):
    old, new = tmp_path / "day1", tmp_path / "day2"
    synth.generate(real, old, 20000, seed=4)
    manifest = synth.incremental(real, old, new, changed_share=0.01, new_share=0.3)
    before = {r["product_id"]: r for r in read_feed(old)}
    after = {r["product_id"]: r for r in read_feed(new)}
    added = set(after) - set(before)
    changed = [pid for pid in before if after[pid] != before[pid]]
    assert set(before) <= set(after)
    assert len(added) == manifest["new"] == 60
    assert (len(changed) + len(added)) / len(before) == pytest.approx(0.01, abs=0.003)
    assert len(changed) == manifest["modified"]
    kinds = manifest["modified_by_kind"]
    assert set(kinds) == {"title", "price", "attributes"}
    ids = list(after)
    assert ids == sorted(ids)  # new products come after the old ids
    # the new catalog is self-contained: its photos resolve inside it
    some = next(r for r in after.values() if r["image"])
    assert check_image(new, some["image"]).status == "valid"


def test_cli_refuses_to_write_into_the_real_catalog(real_dir):
    with pytest.raises(SystemExit):
        synth.main(["--products", "10", "--out", str(real_dir), "--real", str(real_dir)])
