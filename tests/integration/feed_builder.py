"""A small catalog for integration tests: real products and photos, plus every kind of bad input."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
from pathlib import Path

from PIL import Image

# product lines from the real feed without / with a photo
TEXT_ONLY, WITH_PHOTO = 150, 50

# (line payload, expected reject_reason of that line)
BAD_LINES = [
    (b'{"product_id": "bad-json", "title": ', "unparseable_json"),
    (b"[1, 2, 3]", "not_a_json_object"),
    (b'{"product_id": "t1", "title": "\xff\xfe broken"}', "invalid_utf8"),
    (json.dumps({"title": "Nameless Tee", "price": 10}).encode(), "missing_product_id"),
    (json.dumps({"product_id": "900001", "title": "   ", "price": 10}).encode(), "empty_title"),
    (json.dumps({"product_id": "900002", "title": "Refund Tee", "price": -5}).encode(), "negative_price"),
    (json.dumps({"product_id": "900003", "title": "T" * 1000, "price": 5}).encode(), "field_too_large"),
    (json.dumps({"product_id": "900004", "title": "Haggle Tee", "price": "cheap"}).encode(), "invalid_price"),
]

# product id -> (image ref written in the feed, expected image reject_reason)
BAD_IMAGES = {
    "900010": ("images/900010.jpg", "missing_file"),
    "900011": ("images/900011.jpg", "not_an_image"),
    "900012": ("images/900012.jpg", "undecodable"),
    "900013": ("images/900013.png", "decompression_bomb"),
    "900014": ("../../../../etc/passwd", "path_outside_catalog"),
    "900015": ("images/900015.jpg", "path_outside_catalog"),  # symlink out of the catalog
}


def _product(product_id: str, image: str | None) -> dict:
    return {"product_id": product_id, "title": f"Test Product {product_id}", "brand": "Testwear",
            "gender": "Unisex", "master_category": "Apparel", "sub_category": "Topwear",
            "article_type": "Tshirts", "base_colour": "Blue", "season": "Summer", "year": 2020,
            "usage": "Casual", "price": 499, "description": "A test product.",
            "merchant_attributes": {"Fit": "Regular Fit"}, "image": image}


def build_feed(real_catalog: Path, dest: Path) -> dict:
    """Write dest/products.jsonl.gz and dest/images; return what the pipeline should make of it."""
    (dest / "images").mkdir(parents=True)
    text_only, with_photo = [], []
    with gzip.open(real_catalog / "products.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            bucket = with_photo if record["image"] else text_only
            limit = WITH_PHOTO if record["image"] else TEXT_ONLY
            if len(bucket) < limit:
                bucket.append(record)
            if len(text_only) >= TEXT_ONLY and len(with_photo) >= WITH_PHOTO:
                break
    for record in with_photo:
        shutil.copy(real_catalog / record["image"], dest / record["image"])

    real = text_only + with_photo
    lines = [json.dumps(r).encode() for r in real]
    # Duplicates: the last valid line wins. A conflicting copy of real[0] later in the feed makes the
    # original line the loser; an identical copy of real[1] makes the earlier line the loser.
    changed = dict(real[0], title=real[0]["title"] + " (updated)")
    lines += [json.dumps(changed).encode(), json.dumps(real[1]).encode(), b"", b"   "]
    lines += [payload for payload, _ in BAD_LINES]

    outside = dest.parent / "outside.jpg"
    outside.write_bytes(b"secret")
    for product_id, (ref, _) in BAD_IMAGES.items():
        lines.append(json.dumps(_product(product_id, ref)).encode())
    (dest / "images/900011.jpg").write_text("<html>not a photo</html>")
    good = io.BytesIO()
    Image.effect_noise((300, 300), 64).convert("RGB").save(good, "JPEG")
    (dest / "images/900012.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])  # header intact
    bomb = io.BytesIO()
    Image.new("1", (9000, 9000)).save(bomb, "PNG")  # 81 Mpx in a few KB
    (dest / "images/900013.png").write_bytes(bomb.getvalue())
    os.symlink(outside, dest / "images/900015.jpg")

    with gzip.open(dest / "products.jsonl.gz", "wb") as handle:
        handle.write(b"\n".join(lines) + b"\n")

    reasons = {reason: 1 for _, reason in BAD_LINES}
    reasons.update(duplicate_id_conflicting=1, duplicate_id_identical=1)
    image_reasons: dict[str, int] = {}
    for _, reason in BAD_IMAGES.values():
        image_reasons[reason] = image_reasons.get(reason, 0) + 1
    return {
        "lines_landed": len(lines) - 2,  # two blank lines
        "products_staged": len(real) + len(BAD_IMAGES),
        "quarantine_reasons": reasons,
        "images_valid": len(with_photo),
        "image_reasons": image_reasons,
        "conflict_winner": (changed["product_id"], changed["title"]),
    }


def real_products(real_catalog: Path, text_only: int, with_photo: int) -> tuple[list[dict], list[dict]]:
    """The first `text_only` products without a photo and `with_photo` with one, from the real feed."""
    without, with_ = [], []
    with gzip.open(real_catalog / "products.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            bucket, limit = (with_, with_photo) if record["image"] else (without, text_only)
            if len(bucket) < limit:
                bucket.append(record)
            if len(without) >= text_only and len(with_) >= with_photo:
                break
    return without, with_
