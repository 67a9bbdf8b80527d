"""Collection marts shaped like the contract (models/collections/_collections__models.yml), built
from real catalog products and photos, and written as Spark would: Parquet part files under
<data dir>/warehouse/<schema>.db/<table>/ with a _SUCCESS marker.

Collections are combinations of the merchant's own fields (article type, colour, gender, usage),
so feeds are real products; scores are deterministic stand-ins for the matcher's.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import defaultdict
from itertools import combinations
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

TYPES = {"article_type": "article_type", "colour": "base_colour", "gender": "gender", "usage": "usage"}
PAIRINGS = [("article_type",), ("article_type", "colour"), ("article_type", "gender"),
            ("article_type", "colour", "gender"), ("article_type", "usage")]
CHANGED_AT = pd.Timestamp("2026-11-01 12:00:00")

EVIDENCE_TYPE = pa.list_(pa.struct([("attribute_id", pa.string()), ("attribute_type", pa.string()),
                                    ("value", pa.string()), ("score", pa.float64())]))
SCHEMAS = {
    "collections": pa.schema([
        ("collection_id", pa.string()), ("attribute_ids", pa.list_(pa.string())),
        ("attribute_types", pa.list_(pa.string())), ("attribute_values", pa.list_(pa.string())),
        ("attribute_key", pa.string()), ("n_attributes", pa.int32()), ("pairing_id", pa.string()),
        ("product_count", pa.int64()), ("mean_score", pa.float64()), ("title", pa.string()),
        ("quality_score", pa.float64()), ("title_model", pa.string()), ("prompt_version", pa.string()),
        ("slug", pa.string()), ("url_path", pa.string()), ("status", pa.string()),
        ("held_back_reason", pa.string()), ("canonical_collection_id", pa.string()),
        ("canonical_url_path", pa.string()), ("feed_size", pa.int64()), ("content_hash", pa.string()),
        ("content_changed_at", pa.timestamp("us")), ("first_published_at", pa.timestamp("us")),
    ]),
    "collection_feeds": pa.schema([
        ("collection_id", pa.string()), ("position", pa.int32()), ("product_id", pa.string()),
        ("match_type", pa.string()), ("matched_attributes", pa.int32()), ("mean_score", pa.float64()),
        ("evidence", EVIDENCE_TYPE), ("product_title", pa.string()), ("brand", pa.string()),
        ("price", pa.float64()), ("image_path", pa.string()), ("image_sha256", pa.string()), ("image_width", pa.int32()),
        ("image_height", pa.int32()), ("variant_count", pa.int32()),
    ]),
    "collection_redirects": pa.schema([
        ("from_url_path", pa.string()), ("to_url_path", pa.string()), ("from_collection_id", pa.string()),
        ("to_collection_id", pa.string()), ("reason", pa.string()),
    ]),
    "collection_metrics": pa.schema([
        ("metric", pa.string()), ("dimension", pa.string()), ("value", pa.float64()),
        ("computed_at", pa.timestamp("us")),
    ]),
}


def _unit(*parts) -> float:
    """Deterministic number in [0, 1) from the parts."""
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16) / 2**32


def _slug(text: str) -> str:
    return "-".join("".join(ch if ch.isalnum() else " " for ch in text.lower()).split())


def read_catalog_products(catalog_dir: Path, limit: int | None) -> list[dict]:
    """Products that have a photo, in feed order, with the photo's real size."""
    products = []
    with gzip.open(catalog_dir / "products.jsonl.gz", "rt", encoding="utf-8") as feed:
        for line in feed:
            row = json.loads(line)
            image = catalog_dir / row["image"] if row.get("image") else None
            if image is None or not image.is_file() or not row.get("title") or row.get("price") is None:
                continue
            with Image.open(image) as photo:
                row["image_width"], row["image_height"] = photo.size
            row["image_path"] = str(image.resolve())
            row["image_sha256"] = hashlib.sha256(image.read_bytes()).hexdigest()
            products.append(row)
            if limit and len(products) >= limit:
                break
    return products


def build_marts(products: list[dict], min_products: int = 3, max_feed_size: int = 200,
                partial_share: float = 0.2) -> dict[str, pd.DataFrame]:
    attributes = {}  # (type, value) -> attribute_id
    carried = defaultdict(set)  # attribute_id -> product ids
    by_id = {p["product_id"]: p for p in products}
    for p in products:
        for attr_type, field in TYPES.items():
            value = (p.get(field) or "").strip()
            if value and value not in ("NA",):
                attribute_id = "attr_" + hashlib.sha256(f"{attr_type}={value}".encode()).hexdigest()[:16]
                attributes[(attr_type, value)] = attribute_id
                carried[attribute_id].add(p["product_id"])
    by_type = defaultdict(list)
    for (attr_type, value), attribute_id in sorted(attributes.items()):
        by_type[attr_type].append((value, attribute_id))

    collections, feeds = [], []
    for pairing in PAIRINGS:
        combos = [[]]
        for attr_type in pairing:
            combos = [c + [(attr_type, v, a)] for c in combos for v, a in by_type[attr_type]]
        for combo in combos:
            ids = sorted(a for _, _, a in combo)
            full = set.intersection(*(carried[a] for a in ids))
            if len(full) < min_products:
                continue
            key = "|".join(f"{t}={v}" for t, v, _ in sorted(combo))
            collection_id = "col_" + hashlib.sha256(",".join(ids).encode()).hexdigest()[:16]
            values = {t: v for t, v, _ in combo}
            usage = values.get("usage") if values.get("usage", "") not in values["article_type"] else None
            title = " ".join(x for x in (values.get("colour"), usage, values["article_type"]) if x)
            if "gender" in values:
                title += f" for {values['gender']}"
            partial = set()
            if len(ids) > 1:
                for keep in combinations(ids, len(ids) - 1):
                    partial |= set.intersection(*(carried[a] for a in keep))
                partial -= full

            def evidence(pid):
                return [{"attribute_id": a, "attribute_type": t, "value": v,
                         "score": round(0.55 + 0.45 * _unit(pid, a), 4)}
                        for t, v, a in sorted(combo) if pid in carried[a]]

            ranked = sorted(full, key=lambda pid: (-sum(e["score"] for e in evidence(pid)) / len(ids), pid))
            ranked_partial = sorted(partial, key=lambda pid: (-sum(e["score"] for e in evidence(pid)), pid))
            n_partial = int(len(ranked) * partial_share)
            feed = [(pid, "full") for pid in ranked] + [(pid, "partial") for pid in ranked_partial[:n_partial]]
            feed = feed[:max_feed_size]
            for position, (pid, match_type) in enumerate(feed, start=1):
                ev = evidence(pid)
                p = by_id[pid]
                feeds.append({
                    "collection_id": collection_id, "position": position, "product_id": pid,
                    "match_type": match_type, "matched_attributes": len(ev),
                    "mean_score": round(sum(e["score"] for e in ev) / len(ev), 4), "evidence": ev,
                    "product_title": p["title"], "brand": p.get("brand"), "price": float(p["price"]),
                    "image_path": p["image_path"], "image_sha256": p["image_sha256"],
                    "image_width": p["image_width"],
                    "image_height": p["image_height"], "variant_count": 1})
            url_path = f"/c/{_slug(title)}-{collection_id[-6:]}/"
            collections.append({
                "collection_id": collection_id, "attribute_ids": ids,
                "attribute_types": [dict((a, t) for t, _, a in combo)[a] for a in ids],
                "attribute_values": [dict((a, v) for _, v, a in combo)[a] for a in ids],
                "attribute_key": key, "n_attributes": len(ids), "pairing_id": "+".join(pairing),
                "product_count": len(full), "mean_score": 0.8, "title": title, "quality_score": 4.0,
                "title_model": "fixture", "prompt_version": "v1", "slug": _slug(title),
                "url_path": url_path, "status": "published", "held_back_reason": None,
                "canonical_collection_id": collection_id, "canonical_url_path": url_path,
                "feed_size": len(feed),
                "content_hash": hashlib.sha256((title + "|" + ",".join(p for p, _ in feed)).encode()).hexdigest(),
                "content_changed_at": CHANGED_AT + pd.Timedelta(minutes=len(collections)),
                "first_published_at": CHANGED_AT})

    frame = pd.DataFrame(collections)
    # A collection whose full feed equals a broader collection's is its near-duplicate, as the
    # pipeline's dedup would find; a few with no such twin are held back, like failed titles.
    full_members = defaultdict(set)
    for f in feeds:
        if f["match_type"] == "full":
            full_members[f["collection_id"]].add(f["product_id"])
    by_feed = {}
    for i, row in frame.sort_values(["n_attributes", "collection_id"]).iterrows():
        members = frozenset(full_members[row.collection_id])
        twin = by_feed.get(members)
        if twin is not None:
            frame.loc[i, ["status", "canonical_collection_id", "canonical_url_path"]] = [
                "duplicate", frame.loc[twin, "collection_id"], frame.loc[twin, "url_path"]]
        else:
            by_feed[members] = i
    published = frame.index[frame["status"] == "published"]
    held = published[3::11]
    frame.loc[held, ["status", "held_back_reason", "canonical_collection_id", "canonical_url_path"]] = [
        "held_back", "low_quality_title", None, None]
    held_ids = set(frame.loc[held, "collection_id"])
    feeds = [f for f in feeds if f["collection_id"] not in held_ids]

    redirects = []
    live = frame[frame["status"] == "published"]
    for _, row in frame[frame["status"] == "duplicate"].iterrows():
        redirects.append({"from_url_path": row.url_path, "to_url_path": row.canonical_url_path,
                          "from_collection_id": row.collection_id,
                          "to_collection_id": row.canonical_collection_id, "reason": "merged"})
    for _, row in live.head(2).iterrows():
        redirects.append({"from_url_path": row.url_path.replace("/c/", "/c/old-"), "to_url_path": row.url_path,
                          "from_collection_id": row.collection_id, "to_collection_id": row.collection_id,
                          "reason": "renamed"})
    redirects.append({"from_url_path": "/c/retired-collection-000000/", "to_url_path": "/",
                      "from_collection_id": "col_0000000000000000", "to_collection_id": None,
                      "reason": "removed"})
    metrics = [{"metric": "collections", "dimension": status, "value": float(n), "computed_at": CHANGED_AT}
               for status, n in frame["status"].value_counts().items()]
    return {"collections": frame.reset_index(drop=True), "collection_feeds": pd.DataFrame(feeds),
            "collection_redirects": pd.DataFrame(redirects), "collection_metrics": pd.DataFrame(metrics)}


def write_warehouse(data_dir: Path, marts: dict[str, pd.DataFrame], schema: str = "pinlanding") -> Path:
    """Write the marts where pinlanding.marts reads them; replaces existing tables."""
    db = data_dir / "warehouse" / f"{schema}.db"
    for name, frame in marts.items():
        table_dir = db / name
        table_dir.mkdir(parents=True, exist_ok=True)
        for old in table_dir.iterdir():
            old.unlink()
        table = pa.Table.from_pandas(frame, schema=SCHEMAS[name], preserve_index=False)
        pq.write_table(table, table_dir / "part-00000-fixture.snappy.parquet")
        (table_dir / "_SUCCESS").write_bytes(b"")
    return db
