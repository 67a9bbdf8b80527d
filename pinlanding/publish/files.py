"""Writing the site: atomic file writes, the publish manifest, and the staged copy that is swapped in
whole, so readers (and a publish killed half-way) only ever see the last complete site."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

MANIFEST_NAME = "_publish_manifest.json"


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomic write; False (and no write) when the file already holds exactly these bytes."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def _remove_page(out_dir: Path, rel_path: str) -> None:
    target = out_dir / rel_path
    target.unlink(missing_ok=True)
    parent = target.parent
    while parent != out_dir and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def _read_manifest(out_dir: Path) -> dict:
    try:
        manifest = json.loads((out_dir / MANIFEST_NAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return manifest if manifest.get("format") == 1 else {}


def _side_dirs(site_dir: Path) -> tuple[Path, Path]:
    """(staging, previous): siblings of the site, so renames between them stay on one filesystem."""
    return site_dir.with_name(f".{site_dir.name}.staging"), site_dir.with_name(f".{site_dir.name}.previous")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _stage(site_dir: Path) -> Path:
    """A fresh staging directory holding a hard-link copy of the live site (no bytes copied).

    Safe because the publisher never modifies a file in place: every write is a temp file plus
    os.replace (a new inode), every removal an unlink, so the live site's inodes stay untouched.
    Leftovers of a killed publish are cleared first; if it died between the two renames of a
    non-atomic swap, the previous site is put back.
    """
    staging, previous = _side_dirs(site_dir)
    if not site_dir.exists() and previous.is_dir():
        os.rename(previous, site_dir)
    for leftover in (staging, previous):
        if leftover.exists():
            shutil.rmtree(leftover)
    site_dir.parent.mkdir(parents=True, exist_ok=True)
    if site_dir.is_dir():
        # `.name.tmp` files are a killed write's temp files: never publish or link them
        shutil.copytree(site_dir, staging, copy_function=_link_or_copy, ignore=shutil.ignore_patterns(".*.tmp"))
    else:
        staging.mkdir()
    return staging


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _swap_in(staging: Path, site_dir: Path) -> None:
    """Make the staged site the live one; a reader sees the old site or the new one, never a mix."""
    if site_dir.is_dir() and _exchange(staging, site_dir):
        shutil.rmtree(staging)  # now the old site
        return
    _, previous = _side_dirs(site_dir)
    if site_dir.exists():  # no atomic exchange here: a brief moment without a site, never a mixed one
        os.rename(site_dir, previous)
    os.rename(staging, site_dir)
    shutil.rmtree(previous, ignore_errors=True)


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()
