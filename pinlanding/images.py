"""Safety and validity checks for catalog photos.

A photo is used downstream only when `check_image` says `valid`. The checks run cheapest first and
stop at the first failure, so a rejected file is never read or decoded past the check that failed:
a path outside the catalog is never opened, an oversized file is never read, and a decompression
bomb is never decoded (only its header is parsed).
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

# Reasons, in the order the checks run.
PATH_OUTSIDE_CATALOG = "path_outside_catalog"
MISSING_FILE = "missing_file"
NOT_A_FILE = "not_a_regular_file"
FILE_TOO_LARGE = "file_too_large"
EMPTY_FILE = "empty_file"
NOT_AN_IMAGE = "not_an_image"
UNSUPPORTED_FORMAT = "unsupported_format"
DECOMPRESSION_BOMB = "decompression_bomb"
TOO_SMALL = "too_small"
UNDECODABLE = "undecodable"
REJECT_REASONS = (
    PATH_OUTSIDE_CATALOG, MISSING_FILE, NOT_A_FILE, FILE_TOO_LARGE, EMPTY_FILE, NOT_AN_IMAGE,
    UNSUPPORTED_FORMAT, DECOMPRESSION_BOMB, TOO_SMALL, UNDECODABLE,
)


@dataclass(frozen=True)
class ImageLimits:
    """Defaults equal the dbt vars max_image_bytes, max_image_pixels, min_image_side and
    allowed_image_formats (pinned by tests/unit/test_images.py); stg_product_images passes the vars.
    Literals, not a dbt_project.yml read: executors on a cluster import this without the project."""
    max_bytes: int = 20_000_000
    max_pixels: int = 40_000_000
    min_side: int = 16
    allowed_formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP")


@dataclass
class ImageCheck:
    status: str  # "valid" | "rejected"
    reject_reason: str | None = None
    reject_detail: str | None = None
    resolved_path: str | None = None
    file_bytes: int | None = None
    sha256: str | None = None
    image_format: str | None = None
    width: int | None = None
    height: int | None = None
    mode: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _rejected(reason: str, detail: str, **known) -> ImageCheck:
    return ImageCheck(status="rejected", reject_reason=reason, reject_detail=detail[:500], **known)


def resolve_inside(catalog_dir: str | os.PathLike, image_ref: str) -> Path | None:
    """The absolute path of `image_ref` if it stays inside `catalog_dir` (symlinks followed)."""
    if not image_ref or "\x00" in image_ref or os.path.isabs(image_ref):
        return None
    root = Path(catalog_dir).resolve()
    candidate = (root / image_ref).resolve()
    return candidate if candidate.is_relative_to(root) and candidate != root else None


def check_image(catalog_dir: str | os.PathLike, image_ref: str, limits: ImageLimits = ImageLimits()) -> ImageCheck:
    path = resolve_inside(catalog_dir, image_ref)
    if path is None:
        return _rejected(PATH_OUTSIDE_CATALOG, f"{image_ref!r} does not resolve inside the catalog directory")
    if not path.exists():
        return _rejected(MISSING_FILE, f"{image_ref} not found", resolved_path=str(path))
    if not path.is_file():
        return _rejected(NOT_A_FILE, f"{image_ref} is not a regular file", resolved_path=str(path))
    size = path.stat().st_size
    known = {"resolved_path": str(path), "file_bytes": size}
    if size > limits.max_bytes:
        return _rejected(FILE_TOO_LARGE, f"{size} bytes > {limits.max_bytes}", **known)
    if size == 0:
        return _rejected(EMPTY_FILE, "0 bytes", **known)

    with path.open("rb") as handle:
        data = handle.read(limits.max_bytes + 1)  # bounded even if the file grew since stat()
    known.update(file_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())

    try:
        # Image.open parses only the header; pixel data is decoded later by load().
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            return _rejected(DECOMPRESSION_BOMB, str(exc), **known)
        return _rejected(NOT_AN_IMAGE, "not a recognised image format", **known)
    except Exception as exc:  # malformed headers raise assorted errors inside Pillow's plugins
        return _rejected(NOT_AN_IMAGE, f"{type(exc).__name__}: {exc}", **known)

    with image:
        width, height = image.size
        known.update(image_format=image.format, width=width, height=height, mode=image.mode)
        if image.format not in limits.allowed_formats:
            return _rejected(UNSUPPORTED_FORMAT, f"{image.format} not in {list(limits.allowed_formats)}", **known)
        if width * height > limits.max_pixels:
            return _rejected(DECOMPRESSION_BOMB, f"{width}x{height} > {limits.max_pixels} pixels", **known)
        if min(width, height) < limits.min_side:
            return _rejected(TOO_SMALL, f"{width}x{height} < {limits.min_side}px", **known)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # e.g. "Truncated File Read", bomb warnings
                image.load()
        except Exception as exc:
            return _rejected(UNDECODABLE, f"{type(exc).__name__}: {exc}", **known)
    return ImageCheck(status="valid", **known)
