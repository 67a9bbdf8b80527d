"""Product photos in the site: content-addressed copies (hard links where possible) under img/."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from pinlanding.publish.inputs import _none_if_na


class ImageStore:
    """Copies (hardlinks when possible) product photos into site/img/<sha256><ext>.

    Names are content hashes, so a changed photo gets a new URL and pages that show it get a new
    key. The hash is the one staging computed (collection_feeds.image_sha256); without it the photo
    is hashed here, cached in the manifest by (path, size, mtime). Only regular files under
    `image_root` (the catalog) are published.
    """

    def __init__(self, out_dir: Path, image_root: Path, cache: dict):
        self.img_dir = out_dir / "img"
        self.image_root = image_root.resolve()
        self.cache = cache
        self.names: dict[str, str | None] = {}
        self.sources: dict[str, Path] = {}
        self.skipped = 0

    def name_for(self, image_path, sha256: str | None = None) -> str | None:
        image_path, sha256 = _none_if_na(image_path), _none_if_na(sha256)
        if not image_path:
            return None
        if image_path in self.names:
            return self.names[image_path]
        name = None
        source = Path(image_path).resolve()
        if source.is_relative_to(self.image_root) and source.is_file():
            stat = source.stat()
            cached = self.cache.get(image_path)
            suffix = source.suffix.lower().replace(".jpeg", ".jpg") or ".jpg"
            if sha256:
                name = sha256 + suffix
            elif cached and cached[:2] == [stat.st_size, stat.st_mtime_ns]:
                name = cached[2]
            else:
                name = hashlib.sha256(source.read_bytes()).hexdigest() + suffix
            self.cache[image_path] = [stat.st_size, stat.st_mtime_ns, name]
            self.sources[name] = source
        else:
            self.skipped += 1
        self.names[image_path] = name
        return name

    def materialize(self) -> tuple[int, int]:
        """Make every referenced photo exist in img/ and drop the ones no page references.
        Returns (added, removed)."""
        self.img_dir.mkdir(parents=True, exist_ok=True)
        added = 0
        for name, source in self.sources.items():
            target = self.img_dir / name
            if target.exists():
                continue
            tmp = target.with_name(f".{name}.tmp")
            tmp.unlink(missing_ok=True)
            try:
                os.link(source, tmp)
            except OSError:  # other filesystem, or links not allowed: copy
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
            added += 1
        removed = 0
        for existing in self.img_dir.iterdir():
            if existing.name not in self.sources:
                existing.unlink()
                removed += 1
        used = {path for path, entry in self.cache.items() if entry[2] in self.sources}
        for path in list(self.cache):
            if path not in used:
                del self.cache[path]
        return added, removed
