"""The photo path of scoring: JPEG decode (full vs PIL draft) and the vision tower (float32 vs
bfloat16 autocast), per photo on one thread, and what each does to the champion's recall.

    .venv/bin/python benchmarks/bench_image_scoring.py [--photos 1000]   # after `make run`

With MiniLM features read from the text-feature store, a scored product's cost is mostly its
photo (a fifth of products have one): decode + resize, then the ResNet tower. Measured here:

- Speed: `--photos` catalog photos, one torch thread as in a Spark worker, batches of 128 (the
  scorer's are 256 products, ~50 photos); ms per photo after a warm-up, best of `--repeats`; the
  tower as trained (contiguous), channels-last, and as ml/pyfunc.py serves it (channels-last with
  each batch norm folded into its convolution).
  bfloat16 is fast only on CPUs that have it natively (printed: ml/embeddings.bfloat16_is_native).
- Agreement: cosine between the photo embeddings of each variant and the full-decode float32 ones,
  and the share of the served top-10 attributes (image+text scores) that stay the same.
- The matcher: the champion's test-split Recall@1/5/10 (image+text and image-only) with photos
  decoded as it was trained (full decode) and with each variant.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))
sys.path.insert(0, str(PROJECT_DIR / "benchmarks"))


def full_decode(path: str, size: int):
    """ml/data.py load_image before draft decoding (as the current champion was trained)."""
    import torch
    from PIL import Image

    from ml.data import MEAN, STD

    with Image.open(path) as image:
        image = image.convert("RGB").resize((size, size), Image.BICUBIC)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
    return (pixels.float() / 255.0 - MEAN) / STD


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=1000, help="photos timed (the test split's first)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-config", default=str(PROJECT_DIR / "ml/configs/default.yaml"))
    args = parser.parse_args(argv)

    import torch

    from champion_catalog import champion_and_catalog
    from ml import data as D
    from ml.embeddings import bfloat16_is_native
    from ml.evaluate import recall_at_k, reweight
    from ml.train import embed_split

    version, served, catalog, spark = champion_and_catalog(args.train_config)
    spark.stop()
    size = served.config.image_size
    model = served.model
    # every catalog photo in catalog.images order (training's), test split's first for the timing
    paths, is_test = [None] * len(catalog.images), [False] * len(catalog.images)
    test = set(catalog.rows("test").tolist())
    for row, index in enumerate(catalog.image_index):
        if index >= 0:
            paths[index], is_test[index] = catalog.products.image_path.iloc[row], row in test
    sample = [paths[i] for i in sorted(range(len(paths)), key=lambda i: (not is_test[i], i))[:args.photos]]
    print(f"champion v{version}: {served.config.vision_tower} tower at {size} px; {len(sample)} photos timed, "
          f"1 torch thread; bfloat16 native on this CPU: {bfloat16_is_native()}")

    torch.set_num_threads(1)
    decoders = {"full decode": full_decode, "draft decode": D.load_image}
    decoded, decode_ms = {}, {}
    for name, decode in decoders.items():
        best = float("inf")
        for _ in range(args.repeats):
            started = time.perf_counter()
            decoded[name] = torch.stack([decode(p, size) for p in sample])
            best = min(best, time.perf_counter() - started)
        decode_ms[name] = 1000 * best / len(sample)
    pixel_diff = ((decoded["draft decode"] - decoded["full decode"]) * D.STD).abs().mean() * 255
    print(f"  decode + resize: full {decode_ms['full decode']:.2f} ms/photo, draft {decode_ms['draft decode']:.2f} "
          f"ms/photo ({decode_ms['full decode'] / decode_ms['draft decode']:.2f}x); mean |pixel difference| "
          f"{float(pixel_diff):.2f} of 255")

    # the served model (ml/pyfunc.py) is channels-last with its batch norms folded into the
    # convolutions; the "before" rows are the trained weights as they are in the bundle
    trained = served.trained_model()
    layouts = {"contiguous": trained,
               "channels-last": copy.deepcopy(trained).to(memory_format=torch.channels_last),
               "channels-last, folded": model}

    def encode(images, bfloat16: bool, layout: str):
        tower = layouts[layout]
        images = images.contiguous(memory_format=torch.contiguous_format if layout == "contiguous" else
                                   torch.channels_last)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
            out = torch.cat([tower.encode_image(images[i:i + 128]).float() for i in range(0, len(images), 128)])
        return torch.nn.functional.normalize(out, dim=-1)  # bfloat16's own normalisation is off by ~1e-3

    embeddings, encode_ms = {}, {}
    for name, bfloat16, layout in (("float32", False, "contiguous"), ("float32 channels-last", False, "channels-last"),
                                   ("float32 served", False, "channels-last, folded"),
                                   ("bfloat16", True, "contiguous"), ("bfloat16 channels-last", True, "channels-last"),
                                   ("bfloat16 served", True, "channels-last, folded")):
        encode(decoded["full decode"][:128], bfloat16, layout)  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            started = time.perf_counter()
            embeddings[name] = encode(decoded["full decode"], bfloat16, layout)
            best = min(best, time.perf_counter() - started)
        encode_ms[name] = 1000 * best / len(sample)
        cosine = (embeddings[name] * embeddings["float32"]).sum(1)
        print(f"  vision tower {name:<22} {encode_ms[name]:.2f} ms/photo "
              f"({encode_ms['float32'] / encode_ms[name]:.2f}x); cosine to float32: mean {cosine.mean():.5f}, "
              f"min {cosine.min():.5f}")
    print(f"  photo path per photo: {decode_ms['full decode'] + encode_ms['float32']:.2f} ms (full decode, float32) -> "
          f"{decode_ms['draft decode'] + encode_ms['bfloat16']:.2f} ms (draft decode, bfloat16) -> "
          f"{decode_ms['draft decode'] + encode_ms['bfloat16 served']:.2f} ms (draft decode, bfloat16, "
          "channels-last, batch norms folded: as served)")

    # the champion on the test split, every photo decoded each way
    torch.set_num_threads(2)
    images = {name: torch.stack([decode(p, size) for p in paths]) for name, decode in decoders.items()}
    variants = {"full decode, float32 (as trained)": (images["full decode"], False, trained),
                "draft decode, float32": (images["draft decode"], False, model),
                "draft decode, bfloat16": (images["draft decode"], True, model)}
    prior, attributes = catalog.attribute_log_prior.numpy(), served.attribute_embeddings
    results, top10 = {}, {}
    for name, (imgs, bfloat16, tower) in variants.items():
        variant, results[name] = replace(catalog, images=imgs), {}
        for mode in ("image_text", "image_only"):
            # as served (ml/pyfunc.py): product embeddings in the variant's precision, the
            # bundle's float32 attribute embeddings, the frequency prior
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
                products, rows = embed_split(tower, variant, catalog.rows("test"), mode)
            scores = reweight((products.float() @ attributes.T).numpy(), prior, served.beta)
            results[name].update({f"{mode}.{k}": v for k, v in
                                  recall_at_k(scores, catalog.targets[rows].numpy(), catalog.attribute_types).items()})
            if mode == "image_text":
                top10[name] = np.argsort(-scores, axis=1)[:, :10]
    reference = top10["full decode, float32 (as trained)"]
    print(f"\nchampion v{version}, test split ({len(catalog.rows('test'))} products): Recall@1 / @5 / @10; "
          "top-10 attributes the same as as-trained")
    for mode in ("image_text", "image_only"):
        for name, metrics in results.items():
            cells = " / ".join(f"{metrics[f'{mode}.recall_at_{k}']:.3f}" for k in (1, 5, 10))
            same = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top10[name], reference)])
            print(f"  {mode:<10} {name:<34} {cells}" + (f"   top-10 same {same:.4f}" if mode == "image_text" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
