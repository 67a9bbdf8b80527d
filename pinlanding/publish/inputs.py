"""The marts the site is built from (`collections`, `collection_feeds`, `collection_redirects`,
their columns being the contract in models/collections/_collections__models.yml) and the site
model derived from them: which collections get pages, their related collections and breadcrumbs."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import combinations

import pandas as pd

VALID_STATUSES = ("published", "duplicate")
RELATED_LIMIT = 8
# Top-level names the publisher owns; a collection URL must not land on them.
RESERVED_SEGMENTS = {"img", "page"}
URL_PATH_RE = re.compile(r"^/(?:[A-Za-z0-9._~-]+/)+$")

COLLECTION_COLUMNS = [
    "collection_id", "attribute_ids", "attribute_types", "attribute_values", "product_count",
    "title", "url_path", "status", "canonical_collection_id", "canonical_url_path", "feed_size",
    "content_hash", "content_changed_at",
]
FEED_COLUMNS = [
    "collection_id", "position", "product_id", "match_type", "matched_attributes", "mean_score",
    "evidence", "product_title", "brand", "price", "image_path", "image_sha256", "image_width", "image_height",
    "variant_count",
]
REDIRECT_COLUMNS = ["from_url_path", "to_url_path", "reason"]

MartSource = Mapping[str, pd.DataFrame] | Callable[..., pd.DataFrame] | None


def load_marts(marts: MartSource = None) -> dict[str, pd.DataFrame]:
    """The three tables the site needs, from a {name: DataFrame} mapping, a reader
    `f(name, columns)`, or (default) the warehouse's Parquet directories."""
    if marts is None:
        from pinlanding.marts import read_mart

        marts = read_mart
    wanted = {"collections": COLLECTION_COLUMNS, "collection_feeds": FEED_COLUMNS,
              "collection_redirects": REDIRECT_COLUMNS}
    tables = {}
    for name, columns in wanted.items():
        frame = marts[name] if isinstance(marts, Mapping) else marts(name, columns)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise KeyError(f"mart {name} lacks contract columns {missing}")
        tables[name] = frame[columns]
    return tables


def _as_list(value) -> list:
    return [] if value is None or (isinstance(value, float) and math.isnan(value)) else list(value)


def _none_if_na(value):
    return None if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)) else value


def is_safe_url_path(url_path) -> bool:
    """Site-relative directory URL that maps to a file under the site dir and nothing the
    publisher owns (no `..`, no empty segments, not the root)."""
    if not isinstance(url_path, str) or not URL_PATH_RE.match(url_path):
        return False
    segments = url_path.strip("/").split("/")
    return not any(s in (".", "..") for s in segments) and segments[0] not in RESERVED_SEGMENTS


def _check_marts_complete() -> None:
    """Refuse marts that a killed run left half-written: Spark writes `_SUCCESS` when a table's
    write job commits, and the site must never be replaced by a publish of part of a mart."""
    from pinlanding import marts as warehouse_marts

    if hasattr(warehouse_marts, "reads_files") and not warehouse_marts.reads_files():
        return  # read through the metastore: only registered, complete tables are seen
    for name in ("collections", "collection_feeds", "collection_redirects"):
        path = warehouse_marts.warehouse_table_path(name)
        if path.is_dir() and not (path / "_SUCCESS").is_file():
            raise RuntimeError(f"mart {name} at {path} was not completely written (an interrupted run?); "
                               f"the site was left as it was. Run `pinlanding run` to rebuild the marts.")


@dataclass
class CollectionEntry:
    collection_id: str
    title: str
    url_path: str
    status: str
    canonical_url_path: str
    attribute_ids: list[str]
    attribute_types: list[str]
    attribute_values: list[str]
    product_count: int
    content_hash: str | None
    content_changed_at: pd.Timestamp | None


def _collection_entries(collections: pd.DataFrame) -> tuple[list[CollectionEntry], dict[str, int]]:
    """Valid collections that can get a page, and counts of the rows skipped and why."""
    skipped = Counter()
    entries: list[CollectionEntry] = []
    seen_paths: set[str] = set()
    changed_at = pd.to_datetime(collections["content_changed_at"], utc=True)
    rows = collections.assign(content_changed_at=changed_at).sort_values("collection_id")
    for row in rows.itertuples(index=False):
        if row.status not in VALID_STATUSES:
            continue
        title = _none_if_na(row.title)
        if not title or not str(title).strip():
            skipped["no_title"] += 1
            continue
        canonical = row.url_path if row.status == "published" else _none_if_na(row.canonical_url_path)
        if not is_safe_url_path(row.url_path) or not is_safe_url_path(canonical):
            skipped["unsafe_url_path"] += 1
            continue
        if row.url_path in seen_paths:
            skipped["conflicting_url_path"] += 1
            continue
        seen_paths.add(row.url_path)
        entries.append(CollectionEntry(
            collection_id=row.collection_id, title=str(title).strip(), url_path=row.url_path,
            status=row.status, canonical_url_path=canonical,
            attribute_ids=[str(a) for a in _as_list(row.attribute_ids)],
            attribute_types=[str(a) for a in _as_list(row.attribute_types)],
            attribute_values=[str(a) for a in _as_list(row.attribute_values)],
            product_count=int(_none_if_na(row.product_count) or 0),
            content_hash=_none_if_na(row.content_hash),
            content_changed_at=_none_if_na(row.content_changed_at)))
    return entries, dict(skipped)


def related_collections(entries: list[CollectionEntry], limit: int = RELATED_LIMIT) -> dict[str, list[CollectionEntry]]:
    """For each collection, published collections sharing attributes: most shared attributes
    first, then most products. A duplicate's own canonical collection leads its list."""
    published = [e for e in entries if e.status == "published"]
    by_attribute: dict[str, list[CollectionEntry]] = defaultdict(list)
    for entry in published:
        for attribute_id in entry.attribute_ids:
            by_attribute[attribute_id].append(entry)
    by_url = {e.url_path: e for e in published}
    related = {}
    for entry in entries:
        shared = Counter()
        for attribute_id in entry.attribute_ids:
            for other in by_attribute.get(attribute_id, ()):
                shared[other.collection_id] += 1
        shared.pop(entry.collection_id, None)
        lookup = {o.collection_id: o for a in entry.attribute_ids for o in by_attribute.get(a, ())}
        ranked = sorted(shared, key=lambda cid: (-shared[cid], -lookup[cid].product_count, cid))
        chosen = [lookup[cid] for cid in ranked]
        canonical = by_url.get(entry.canonical_url_path)
        if entry.status == "duplicate" and canonical is not None:
            chosen = [canonical] + [c for c in chosen if c is not canonical]
        related[entry.collection_id] = chosen[:limit]
    return related


def breadcrumb_trail(entries: list[CollectionEntry]) -> dict[str, list[CollectionEntry]]:
    """Ancestors of each collection, broadest first: a published collection whose attributes are
    a strict subset (the largest such subset, then the one with most products), recursively."""
    published_by_set = {}
    for entry in entries:
        if entry.status == "published":
            key = frozenset(entry.attribute_ids)
            best = published_by_set.get(key)
            if best is None or entry.product_count > best.product_count:
                published_by_set[key] = entry

    def parent(attribute_ids: list[str]) -> CollectionEntry | None:
        for size in range(len(attribute_ids) - 1, 0, -1):
            candidates = [published_by_set[frozenset(c)] for c in combinations(attribute_ids, size)
                          if frozenset(c) in published_by_set]
            if candidates:
                return max(candidates, key=lambda e: (e.product_count, e.collection_id))
        return None

    trails = {}
    for entry in entries:
        trail, current = [], parent(entry.attribute_ids)
        while current is not None:
            trail.insert(0, current)
            current = parent(current.attribute_ids)
        trails[entry.collection_id] = trail
    return trails


def _feed_rows(feeds: pd.DataFrame, collection_ids: set[str]) -> dict[str, list[dict]]:
    feeds = feeds[feeds["collection_id"].isin(collection_ids)].sort_values(["collection_id", "position"])
    columns = {c: feeds[c].tolist() for c in FEED_COLUMNS}
    rows: dict[str, list[dict]] = defaultdict(list)
    for i in range(len(feeds)):
        rows[columns["collection_id"][i]].append({c: columns[c][i] for c in FEED_COLUMNS})
    return rows
