"""Grow the real catalog to N products by recombining real ones; or make an "incremental day" of a
generated catalog.

    .venv/bin/python benchmarks/synthetic_catalog.py --products 250000 --out /tmp/cat250k [--seed 7] [--photo-share 0.2]
    .venv/bin/python benchmarks/synthetic_catalog.py --changed-share 0.01 --from /tmp/cat250k --out /tmp/cat250k-day2
    .venv/bin/python benchmarks/synthetic_catalog.py --products 1000000 --out /tmp/cat1m-8 --shards 8  # a sharded feed

Every synthetic product derives from one real product (its title, description, structured fields
and merchant attributes, so attribute extraction and collections stay meaningful), with:

- a new unique id (`S000000001`, ...; the feed stays sorted by id, like the real one);
- the brand of another real product of the same article type, written into the title and the
  description where the source product named its own brand;
- the price jittered (log-normal, sigma `--price-sigma`); non-integer or missing prices are kept
  as sent (the real feed's dirty values stay, so staging's quarantine has its usual work);
- the long tail of the real feed: (article type, colour) strata are drawn with their real
  frequency, so popular types and colours dominate exactly as in the feed, and inside a stratum the
  source product is drawn with a Zipf weight (`--product-zipf`), so a few products spawn many
  variants as best sellers do. `distribution_report` compares the result with the real feed;
- `--photo-share` of products with a photo: a REAL photo of a product of the same article type and
  colour (article type alone where that stratum has none), hard-linked into DIR/images/ as
  `<product_id>.jpg` (one file per product, like a real feed). A symlink out of DIR would be
  rejected by `pinlanding/images.py` (a photo must resolve inside the catalog directory); a hard
  link is a file inside it and costs one directory entry. Across filesystems it is copied.

The feed is written streaming in chunks (memory bounded by the real catalog plus one chunk) and
gzip level 1 by default. The output is a function of (real catalog, N, seed, options).

Incremental mode copies DIR_OLD's feed line for line and changes `--changed-share` of it: a
share `--new-share` of those are new products appended at the end (new ids), the rest are existing
products with their title, price or merchant attributes changed. DIR/synthetic_manifest.json
records what was generated and is what incremental mode reads.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_REAL = Path(os.environ.get("PINLANDING_CATALOG_DIR", PROJECT_DIR.parent / "shared/data/fashion-catalog"))
FEED = "products.jsonl.gz"
MANIFEST = "synthetic_manifest.json"
ID_PREFIX = "S"
ID_DIGITS = 9
CHUNK = 16_384


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def product_id(i: int) -> str:
    return f"{ID_PREFIX}{i:0{ID_DIGITS}d}"


def _split_on(text_json: str, needle_json: str) -> tuple[str, str] | None:
    """`text_json` (a JSON string literal) cut around the first occurrence of `needle_json`'s
    content, so a new brand can be spliced in without re-encoding."""
    inner = needle_json[1:-1]
    if not inner:
        return None
    at = text_json.find(inner)
    return (text_json[:at], text_json[at + len(inner):]) if at >= 0 else None


class RealCatalog:
    """The real feed in memory (43k products, ~100 MB) with everything precomputed that the
    generator needs per product: JSON fragments, sampling weights, brand and photo pools."""

    def __init__(self, catalog_dir: Path, product_zipf: float = 0.8):
        self.dir = catalog_dir.resolve()
        self.product_zipf = product_zipf
        with gzip.open(self.dir / FEED, "rt", encoding="utf-8") as feed:
            self.rows = [json.loads(line) for line in feed if line.strip()]
        rows = self.rows
        n = len(rows)
        self.article_type = [r.get("article_type") for r in rows]
        self.colour = [r.get("base_colour") for r in rows]
        self.brand_json = [_dumps(r.get("brand")) for r in rows]
        self.price = [r.get("price") for r in rows]
        self.title_json, self.title_cut, self.desc_json, self.desc_cut, self.middle, self.after_price = \
            [], [], [], [], [], []
        for r, brand_json in zip(rows, self.brand_json):
            title_json, desc_json = _dumps(r.get("title")), _dumps(r.get("description"))
            self.title_json.append(title_json)
            self.desc_json.append(desc_json)
            brand = r.get("brand")
            self.title_cut.append(_split_on(title_json, brand_json) if isinstance(brand, str) and isinstance(r.get("title"), str) else None)
            self.desc_cut.append(_split_on(desc_json, brand_json) if isinstance(brand, str) and isinstance(r.get("description"), str) else None)
            # gender .. usage, as sent (dirty values included), then price; then merchant attributes
            self.middle.append("".join(f', "{k}": {_dumps(r.get(k))}' for k in
                                       ("gender", "master_category", "sub_category", "article_type",
                                        "base_colour", "season", "year", "usage")))
            self.after_price.append(f', "merchant_attributes": {_dumps(r.get("merchant_attributes"))}')

        # Sampling weight of each source product: its (article type, colour) stratum keeps its real
        # share; inside the stratum a seeded-independent Zipf over the products (rank by id hash).
        strata = defaultdict(list)
        for i, key in enumerate(zip(self.article_type, self.colour)):
            strata[key].append(i)
        weights = np.empty(n)
        for members in strata.values():
            members.sort(key=lambda i: hash_rank(rows[i].get("product_id")))
            zipf = 1.0 / np.arange(1, len(members) + 1) ** product_zipf
            weights[members] = len(members) / n * zipf / zipf.sum()
        self.weights = weights / weights.sum()

        # Brand donors per article type (a multiset: popular brands stay popular).
        self.type_index, type_members = _group(self.article_type)
        self.type_of = np.array([self.type_index[t] for t in self.article_type])
        self.type_offsets, self.type_sizes, self.type_members = _flatten(type_members)

        # Photo pools: real products with a photo, by (article type, colour), else by article type.
        has_photo = [isinstance(r.get("image"), str) and (self.dir / r["image"]).is_file() for r in rows]
        by_stratum, by_type = defaultdict(list), defaultdict(list)
        for i, ok in enumerate(has_photo):
            if ok:
                by_stratum[(self.article_type[i], self.colour[i])].append(i)
                by_type[self.article_type[i]].append(i)
        pools, pool_of_stratum, pool_of_type = [], {}, {}
        for key in sorted(by_stratum, key=repr):
            pool_of_stratum[key] = len(pools)
            pools.append(by_stratum[key])
        for key in sorted(by_type, key=repr):
            pool_of_type[key] = len(pools)
            pools.append(by_type[key])
        self.pool_offsets, self.pool_sizes, self.pool_members = _flatten(pools)
        self.photo_pool = np.array([pool_of_stratum.get(key, pool_of_type.get(key[0], -1))
                                    for key in zip(self.article_type, self.colour)], dtype=np.int64)
        self.real_photo_share = sum(has_photo) / n
        # Products whose type has no photo at all cannot get one: raise the others' chance to keep the share.
        self.photo_eligible = float(np.sum(self.weights[self.photo_pool >= 0]))
        self.image_path = [r.get("image") if ok else None for r, ok in zip(rows, has_photo)]


def hash_rank(value) -> int:
    import zlib
    return zlib.crc32(str(value).encode("utf-8"))


def _group(keys):
    index = {k: j for j, k in enumerate(sorted(set(keys), key=repr))}
    members = [[] for _ in index]
    for i, k in enumerate(keys):
        members[index[k]].append(i)
    return index, members


def _flatten(groups):
    sizes = np.array([len(g) for g in groups], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    flat = np.array([i for g in groups for i in g], dtype=np.int64)
    return offsets, sizes, flat


def _pick(rng, groups: np.ndarray, offsets, sizes, flat) -> np.ndarray:
    """One uniform member of each given group (vectorised)."""
    return flat[offsets[groups] + (rng.random(len(groups)) * sizes[groups]).astype(np.int64)]


class Generator:
    def __init__(self, real: RealCatalog, out_dir: Path, seed: int, photo_share: float, price_sigma: float):
        self.real, self.out, self.photo_share, self.price_sigma = real, out_dir, photo_share, price_sigma
        self.rng = np.random.default_rng(seed)
        self.images = out_dir / "images"
        self.images.mkdir(parents=True, exist_ok=True)
        self.photos_linked = self.photos_copied = 0

    def _photo(self, pid: str, source_rel: str) -> str:
        rel = f"images/{pid}.jpg"
        target = self.out / rel
        if not target.exists():
            try:
                os.link(self.real.dir / source_rel, target)
                self.photos_linked += 1
            except OSError:  # another filesystem, or not allowed: copy this one photo
                shutil.copyfile(self.real.dir / source_rel, target)
                self.photos_copied += 1
        return rel

    def lines(self, first_id: int, count: int):
        """Yield (source index, JSON line) for products first_id .. first_id+count-1, chunk by chunk."""
        real, rng = self.real, self.rng
        p_photo = min(1.0, self.photo_share / max(real.photo_eligible, 1e-9))
        n_real = len(real.rows)
        for start in range(0, count, CHUNK):
            m = min(CHUNK, count - start)
            src = rng.choice(n_real, size=m, p=real.weights)
            donor = _pick(rng, real.type_of[src], real.type_offsets, real.type_sizes, real.type_members)
            jitter = np.exp(rng.normal(0.0, self.price_sigma, m))
            pools = real.photo_pool[src]
            with_photo = (rng.random(m) < p_photo) & (pools >= 0)
            photo_src = np.full(m, -1, dtype=np.int64)
            if with_photo.any():
                photo_src[with_photo] = _pick(rng, pools[with_photo], real.pool_offsets, real.pool_sizes,
                                              real.pool_members)
            out = []
            for k in range(m):
                i, d = int(src[k]), int(donor[k])
                pid = product_id(first_id + start + k)
                brand_json = real.brand_json[d]
                if brand_json == "null":  # a donor without a brand: keep the source's
                    d, brand_json = i, real.brand_json[i]
                brand_inner = brand_json[1:-1]
                cut = real.title_cut[i]
                title_json = cut[0] + brand_inner + cut[1] if cut else real.title_json[i]
                cut = real.desc_cut[i]
                desc_json = cut[0] + brand_inner + cut[1] if cut else real.desc_json[i]
                price = real.price[i]
                if isinstance(price, int) and not isinstance(price, bool) and price > 0:
                    price = max(1, int(round(price * float(jitter[k]))))
                image = ('"' + self._photo(pid, real.image_path[int(photo_src[k])]) + '"'
                         if photo_src[k] >= 0 else "null")
                price_json = str(price) if type(price) is int else _dumps(price)
                out.append((i, "".join((
                    '{"product_id": "', pid, '", "title": ', title_json, ', "brand": ', brand_json,
                    real.middle[i], ', "price": ', price_json, ', "description": ', desc_json,
                    real.after_price[i], ', "image": ', image, "}\n"))))
            yield out


class GzipWriter:
    """A gzip file written by a background thread: zlib releases the GIL, so compression overlaps
    with generating the next chunk. Bounded queue: memory stays at a few chunks."""

    def __init__(self, path: Path, compress_level: int):
        import queue
        import threading

        self._file = gzip.open(path, "wb", compresslevel=compress_level)
        self._queue = queue.Queue(maxsize=2)
        self._error = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while (data := self._queue.get()) is not None:
            try:
                self._file.write(data)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the producer
                self._error = exc

    def write(self, text: str):
        if self._error:
            raise self._error
        self._queue.put(text.encode("utf-8"))

    def __enter__(self):
        return self

    def close(self, failed: bool = False):
        """Flush and close; re-raise a write error unless the producer already failed."""
        self._queue.put(None)
        self._thread.join()
        self._file.close()
        if self._error and not failed:
            raise self._error

    def __exit__(self, *exc):
        self.close(failed=exc[0] is not None)


def shard_name(shard: int, shards: int) -> str:
    """The feed's file name, or shard `shard` (0-based) of `shards` (`products-00001.jsonl.gz`, ...)."""
    return FEED if shards == 1 else FEED.replace(".jsonl.gz", f"-{shard + 1:05d}.jsonl.gz")


def generate(real: RealCatalog, out_dir: Path, products: int, seed: int = 0, photo_share: float = 0.2,
             price_sigma: float = 0.15, compress_level: int = 1, shards: int = 1) -> dict:
    """`shards` > 1: the same feed (same lines, same order) split into that many files of about
    equal line counts, as a large retailer's export comes (`pinlanding/ingest.py feed_files`)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = Generator(real, out_dir, seed, photo_share, price_sigma)
    types, colours, sources = Counter(), Counter(), Counter()
    with_photo = written = 0
    bounds = [products * (k + 1) // shards for k in range(shards)]  # lines written when shard k ends
    shard, feed = 0, GzipWriter(out_dir / shard_name(0, shards), compress_level)
    failed = True
    try:
        for chunk in gen.lines(1, products):
            for i, _ in chunk:
                types[real.article_type[i]] += 1
                colours[real.colour[i]] += 1
                sources[i] += 1
            with_photo += sum(1 for _, line in chunk if not line.endswith('"image": null}\n'))
            lines = [line for _, line in chunk]
            while lines:
                part, lines = lines[:bounds[shard] - written], lines[bounds[shard] - written:]
                feed.write("".join(part))
                written += len(part)
                if written == bounds[shard] and shard + 1 < shards:
                    feed.close()
                    shard += 1
                    feed = GzipWriter(out_dir / shard_name(shard, shards), compress_level)
        failed = False
    finally:
        feed.close(failed)
    seconds = time.perf_counter() - started
    manifest = {
        "kind": "generated", "products": products, "seed": seed, "photo_share": photo_share, "shards": shards,
        "price_sigma": price_sigma, "product_zipf": real.product_zipf, "source_catalog": str(real.dir),
        "next_id": products + 1, "products_with_photo": with_photo,
        "photos_linked": gen.photos_linked, "photos_copied": gen.photos_copied,
        "seconds": round(seconds, 2), "products_per_s": round(products / seconds),
        "cpu_seconds": round(time.process_time() - cpu_started, 2),
        "distribution": distribution_report(real, types, colours, sources),
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


# ----------------------------------------------------------------------------- skew measurement

def zipf_exponent(counts, top: int | None = None) -> float:
    """Slope of log(frequency) on log(rank) (a rank-frequency fit; ~1 is classic Zipf) over the
    `top` most frequent values, by default those with at least 5 products. Compare two catalogs of
    different sizes over the same `top`: a larger one has more values above any count cut-off."""
    freq = np.sort(np.array(list(counts), dtype=float))[::-1]
    freq = freq[:top] if top else freq[freq >= 5]
    if len(freq) < 3:
        return float("nan")
    ranks = np.arange(1, len(freq) + 1)
    return float(-np.polyfit(np.log(ranks), np.log(freq), 1)[0])


def top_share(counts: Counter, k: int) -> float:
    total = sum(counts.values())
    return sum(c for _, c in counts.most_common(k)) / total if total else 0.0


def total_variation(a: Counter, b: Counter) -> float:
    ta, tb = sum(a.values()), sum(b.values())
    return 0.5 * sum(abs(a.get(k, 0) / ta - b.get(k, 0) / tb) for k in set(a) | set(b))


def distribution_report(real: RealCatalog, types: Counter, colours: Counter, sources: Counter) -> dict:
    real_types, real_colours = Counter(real.article_type), Counter(real.colour)
    n = sum(types.values())
    top_types = sum(1 for c in real_types.values() if c >= 5)
    top_colours = sum(1 for c in real_colours.values() if c >= 5)
    return {
        "article_type": {"zipf_exponent_real": round(zipf_exponent(real_types.values()), 3),
                         "zipf_exponent_synthetic": round(zipf_exponent(types.values(), top_types), 3),
                         "top10_share_real": round(top_share(real_types, 10), 4),
                         "top10_share_synthetic": round(top_share(types, 10), 4),
                         "total_variation": round(total_variation(real_types, types), 4)},
        "base_colour": {"zipf_exponent_real": round(zipf_exponent(real_colours.values()), 3),
                        "zipf_exponent_synthetic": round(zipf_exponent(colours.values(), top_colours), 3),
                        "top5_share_real": round(top_share(real_colours, 5), 4),
                        "top5_share_synthetic": round(top_share(colours, 5), 4),
                        "total_variation": round(total_variation(real_colours, colours), 4)},
        "source_products": {"distinct_used": len(sources),
                            "top1pct_sources_share_of_products": round(
                                top_share(sources, max(1, len(real.rows) // 100)), 4) if n else 0.0},
    }


# ----------------------------------------------------------------------------- incremental day

def _change(row: dict, kind: str, rng, real: RealCatalog, values_by_key: dict) -> dict:
    if kind == "price" and isinstance(row.get("price"), int) and row["price"] > 0:
        row["price"] = max(1, int(round(row["price"] * float(rng.uniform(0.6, 0.95)))))  # a markdown
    elif kind == "attributes" and isinstance(row.get("merchant_attributes"), dict) and row["merchant_attributes"]:
        attrs = row["merchant_attributes"]
        key = sorted(attrs)[int(rng.integers(len(attrs)))]
        options = [v for v in values_by_key.get((row.get("article_type"), key), ()) if v != attrs[key]]
        attrs[key] = options[int(rng.integers(len(options)))] if options else f"{attrs[key]} (updated)"
    else:  # title: a new colour where the title names the product's colour, else a re-worded title
        colour, title = row.get("base_colour"), row.get("title") or ""
        colours = sorted({c for c in real.colour if isinstance(c, str) and c != colour})
        if isinstance(colour, str) and colour in title and colours:
            new = colours[int(rng.integers(len(colours)))]
            row["title"], row["base_colour"] = title.replace(colour, new, 1), new
            if isinstance(row.get("description"), str):
                row["description"] = row["description"].replace(colour, new, 1)
        else:
            row["title"] = f"{title} - New Season"
    return row


def incremental(real: RealCatalog, old_dir: Path, out_dir: Path, changed_share: float, new_share: float = 0.3,
                seed: int | None = None, compress_level: int = 1) -> dict:
    started = time.perf_counter()
    old = json.loads((old_dir / MANIFEST).read_text())
    if old.get("shards", 1) != 1:
        raise ValueError(f"{old_dir} is a sharded feed: an incremental day is made from a one-file feed")
    seed = old["seed"] + 1_000_003 if seed is None else seed
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = out_dir / "images"
    images.mkdir(exist_ok=True)
    linked = copied = 0
    with os.scandir(old_dir / "images") as entries:  # hard links: DIR_NEW is a self-contained catalog
        for entry in entries:
            target = images / entry.name
            if target.exists():
                continue
            try:
                os.link(entry.path, target)
                linked += 1
            except OSError:
                shutil.copyfile(entry.path, target)
                copied += 1
    values_by_key = defaultdict(set)
    for r in real.rows:
        for k, v in (r.get("merchant_attributes") or {}).items() if isinstance(r.get("merchant_attributes"), dict) else ():
            values_by_key[(r.get("article_type"), k)].add(v)
    values_by_key = {k: sorted(v, key=str) for k, v in values_by_key.items()}

    n_old = old["products"]
    p_modify = changed_share * (1 - new_share)
    n_new = int(round(n_old * changed_share * new_share))
    modified = Counter()
    lines_out = 0
    with gzip.open(old_dir / FEED, "rt", encoding="utf-8") as src, \
            GzipWriter(out_dir / FEED, compress_level) as dst:
        while True:
            block = src.readlines(1 << 24)
            if not block:
                break
            draws = rng.random(len(block))
            kinds = rng.integers(0, 3, len(block))
            buf = []
            for line, u, kind in zip(block, draws, kinds):
                if u < p_modify:
                    name = ("title", "price", "attributes")[int(kind)]
                    row = _change(json.loads(line), name, rng, real, values_by_key)
                    line = _dumps(row) + "\n"
                    modified[name] += 1
                buf.append(line)
            lines_out += len(buf)
            dst.write("".join(buf))
        gen = Generator(real, out_dir, seed, old.get("photo_share", 0.2), old.get("price_sigma", 0.15))
        for chunk in gen.lines(old["next_id"], n_new):
            dst.write("".join(line for _, line in chunk))
            lines_out += len(chunk)
    seconds = time.perf_counter() - started
    manifest = {**old, "kind": "incremental", "from": str(old_dir.resolve()), "seed_incremental": seed,
                "products": lines_out, "next_id": old["next_id"] + n_new,
                "changed_share": changed_share, "new_share": new_share,
                "modified": sum(modified.values()), "modified_by_kind": dict(modified), "new": n_new,
                "changed_share_actual": round((sum(modified.values()) + n_new) / n_old, 5),
                "photos_linked": linked + gen.photos_linked, "photos_copied": copied + gen.photos_copied,
                "seconds": round(seconds, 2)}
    manifest.pop("distribution", None)
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, help="products to generate (N)")
    parser.add_argument("--out", required=True, type=Path, help="catalog directory to write (feed + images/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photo-share", type=float, default=0.2, help="share of products with a photo")
    parser.add_argument("--price-sigma", type=float, default=0.15, help="log-normal price jitter")
    parser.add_argument("--product-zipf", type=float, default=0.8,
                        help="Zipf exponent of source products inside an (article type, colour) stratum")
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL, help="the real catalog to recombine")
    parser.add_argument("--compress-level", type=int, default=1, help="gzip level of the feed (1 = fastest)")
    parser.add_argument("--shards", type=int, default=1,
                        help="write the feed as this many files products-00001.jsonl.gz, ... (default: one products.jsonl.gz)")
    parser.add_argument("--changed-share", type=float, help="incremental day: share of products changed or new")
    parser.add_argument("--new-share", type=float, default=0.3, help="incremental day: share of the changes that are new products")
    parser.add_argument("--from", dest="from_dir", type=Path, help="incremental day: the generated catalog to copy")
    args = parser.parse_args(argv)
    if args.out.resolve() == args.real.resolve():
        parser.error("--out must not be the real catalog")
    t0 = time.perf_counter()
    real = RealCatalog(args.real, args.product_zipf)
    load_s = time.perf_counter() - t0
    if args.changed_share is not None:
        if args.from_dir is None:
            parser.error("--changed-share needs --from DIR_OLD")
        result = incremental(real, args.from_dir, args.out, args.changed_share, args.new_share,
                             compress_level=args.compress_level)
        print(f"incremental day: {result['products']} products in {args.out} from {args.from_dir}: "
              f"{result['modified']} changed {result['modified_by_kind']}, {result['new']} new "
              f"({result['changed_share_actual']:.2%}) in {result['seconds']:.1f}s")
    else:
        if not args.products or args.products < 1:
            parser.error("--products N is required")
        if args.shards < 1 or args.shards > args.products:
            parser.error("--shards must be between 1 and --products")
        result = generate(real, args.out, args.products, args.seed, args.photo_share, args.price_sigma,
                          args.compress_level, args.shards)
        d = result["distribution"]
        print(f"generated {args.products} products in {args.out} in {result['seconds']:.1f}s "
              f"({result['products_per_s']} products/s wall, {args.products / max(result['cpu_seconds'], 1e-9):.0f} per CPU-second; "
              f"real catalog loaded in {load_s:.1f}s)")
        print(f"  with photo: {result['products_with_photo'] / args.products:.1%} "
              f"({result['photos_linked']} hard links, {result['photos_copied']} copies)")
        for field, stats in d.items():
            print(f"  {field}: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
