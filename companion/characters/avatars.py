"""Avatar files under the data dir's avatars/: companions' and personas' alike.

Uploaded images are checked and re-encoded by images.py; files get generated names (never the
client's), thumbnails are made on first use and kept beside them.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Callable

from companion.formats.images import avatar_png, default_avatar_png, open_image
from companion.lru_files import write_whole

THUMB_SIZE = 256


class AvatarFiles:
    """The avatars folder: write an uploaded image, read it (or its thumbnail), remove it."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def write(self, png: bytes) -> str:
        """Store a re-encoded PNG under a new name; returns the name."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}.png"
        write_whole(self.folder / name, png)
        return name

    def write_upload(self, data: bytes) -> str:
        """Check an uploaded image (an ImageError, a 400, when it is none), re-encode and store it."""
        return self.write(avatar_png(open_image(data)))

    def replace(self, old: str | None, png: bytes | None, point_to: Callable[[str | None], None]) -> None:
        """Put a new avatar (png) or none (None) in place of old: the new file is written first and
        the old one removed only once point_to(new name) has stored it, so a failure leaves a
        working avatar."""
        name = self.write(png) if png is not None else None
        try:
            point_to(name)
        except BaseException:
            self.remove(name)
            raise
        self.remove(old)

    def remove(self, name: str | None) -> None:
        """Delete an avatar file and its thumbnail (nothing for None)."""
        if name:
            for path in (self.folder / Path(name).name, self._thumb_path(name)):
                path.unlink(missing_ok=True)

    def _thumb_path(self, name: str) -> Path:
        return self.folder / f"{Path(name).stem}.thumb.png"

    def png(self, name: str | None, thumb: bool = False) -> bytes:
        """An avatar's PNG bytes, or its 256 px thumbnail; the default picture for none (or a lost file)."""
        path = self.folder / Path(name).name if name else None
        if name is None or path is None or not path.is_file():
            return default_avatar_png()
        if not thumb:
            return path.read_bytes()
        thumb_path = self._thumb_path(name)
        if not thumb_path.is_file():
            from PIL import Image

            write_whole(thumb_path, avatar_png(Image.open(io.BytesIO(path.read_bytes())), THUMB_SIZE))
        return thumb_path.read_bytes()
