import io
import os

import pytest
from PIL import Image

from pinlanding import images
from pinlanding.images import ImageLimits, check_image


def _jpeg(size=(64, 48), color="red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture()
def catalog(tmp_path):
    root = tmp_path / "catalog"
    (root / "images").mkdir(parents=True)
    return root


def test_valid_jpeg_reports_dimensions_and_hash(catalog):
    data = _jpeg()
    (catalog / "images/ok.jpg").write_bytes(data)
    check = check_image(catalog, "images/ok.jpg")
    assert check.status == "valid" and check.reject_reason is None
    assert (check.width, check.height, check.image_format) == (64, 48, "JPEG")
    import hashlib
    assert check.sha256 == hashlib.sha256(data).hexdigest()
    assert check.file_bytes == len(data)


@pytest.mark.parametrize("ref", ["../outside.jpg", "images/../../outside.jpg", "/etc/passwd", "", "images/\x00.jpg"])
def test_paths_outside_the_catalog_are_rejected_without_opening(catalog, ref, monkeypatch):
    (catalog.parent / "outside.jpg").write_bytes(_jpeg())
    opened = []
    monkeypatch.setattr(images.Path, "open", lambda *a, **k: opened.append(a) or (_ for _ in ()).throw(AssertionError))
    check = check_image(catalog, ref)
    assert check.reject_reason == images.PATH_OUTSIDE_CATALOG
    assert opened == []


def test_symlink_escaping_the_catalog_is_rejected(catalog):
    (catalog.parent / "secret.jpg").write_bytes(_jpeg())
    os.symlink(catalog.parent / "secret.jpg", catalog / "images/link.jpg")
    assert check_image(catalog, "images/link.jpg").reject_reason == images.PATH_OUTSIDE_CATALOG


def test_missing_file(catalog):
    assert check_image(catalog, "images/nope.jpg").reject_reason == images.MISSING_FILE


def test_directory_is_not_a_file(catalog):
    (catalog / "images/dir.jpg").mkdir()
    assert check_image(catalog, "images/dir.jpg").reject_reason == images.NOT_A_FILE


def test_not_an_image(catalog):
    (catalog / "images/text.jpg").write_text("hello, I am not a JPEG")
    assert check_image(catalog, "images/text.jpg").reject_reason == images.NOT_AN_IMAGE


def test_empty_file(catalog):
    (catalog / "images/empty.jpg").write_bytes(b"")
    assert check_image(catalog, "images/empty.jpg").reject_reason == images.EMPTY_FILE


def test_truncated_jpeg_is_undecodable(catalog):
    data = _jpeg((200, 200), "blue")
    (catalog / "images/cut.jpg").write_bytes(data[: len(data) // 2])
    check = check_image(catalog, "images/cut.jpg")
    assert check.reject_reason == images.UNDECODABLE
    assert check.sha256 is not None  # hashed before decoding


def test_oversized_file_is_not_read(catalog):
    (catalog / "images/big.jpg").write_bytes(_jpeg() + b"\0" * 5000)
    check = check_image(catalog, "images/big.jpg", ImageLimits(max_bytes=1000))
    assert check.reject_reason == images.FILE_TOO_LARGE and check.sha256 is None


def test_decompression_bomb_is_never_decoded(catalog):
    buf = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buf, "PNG")  # 144 Mpx in a ~20 KB file
    (catalog / "images/bomb.png").write_bytes(buf.getvalue())
    check = check_image(catalog, "images/bomb.png", ImageLimits(max_pixels=10_000_000))
    assert check.reject_reason == images.DECOMPRESSION_BOMB


def test_unsupported_format(catalog):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, "GIF")
    (catalog / "images/anim.gif").write_bytes(buf.getvalue())
    assert check_image(catalog, "images/anim.gif").reject_reason == images.UNSUPPORTED_FORMAT


def test_too_small(catalog):
    (catalog / "images/tiny.jpg").write_bytes(_jpeg((8, 8)))
    assert check_image(catalog, "images/tiny.jpg").reject_reason == images.TOO_SMALL


def test_real_catalog_photo_is_valid(real_catalog):
    first = sorted((real_catalog / "images").iterdir())[0]
    check = check_image(real_catalog, f"images/{first.name}")
    assert check.status == "valid", check
    assert (check.width, check.height, check.image_format) == (224, 224, "JPEG")  # as the catalog README says


def test_default_limits_are_the_dbt_vars():
    from pinlanding.settings import project_var

    limits = ImageLimits()
    assert limits.max_bytes == project_var("max_image_bytes")
    assert limits.max_pixels == project_var("max_image_pixels")
    assert limits.min_side == project_var("min_image_side")
    assert list(limits.allowed_formats) == project_var("allowed_image_formats")
