"""Images through Pillow: checked by content (never by name), bounded, re-encoded."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from companion.errors import InvalidInput

MAX_PIXELS = 40_000_000
AVATAR_SIZE = 1024


class ImageError(InvalidInput):
    """Bytes that are not a usable image."""


def open_image(data: bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open and fully decode an image, refusing non-images and oversized ones."""
    if not data:
        raise ImageError("the request body is empty: send the image bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(f"image too large: {width}x{height} pixels (at most {max_pixels})")
            image.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("the body is not a supported image (PNG, JPEG, WebP, GIF)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"the image could not be read: {exc}") from None
    return image


def avatar_png(image: Image.Image, size: int = AVATAR_SIZE) -> bytes:
    """The image as a PNG no larger than size x size, metadata dropped."""
    copy = image.convert("RGBA") if image.mode not in ("RGB", "RGBA") else image.copy()
    copy.thumbnail((size, size))
    out = io.BytesIO()
    copy.save(out, format="PNG", optimize=False)
    return out.getvalue()


_default_avatar: bytes | None = None


def default_avatar_png() -> bytes:
    """A plain round avatar for companions that have none (drawn once, kept in memory)."""
    global _default_avatar
    if _default_avatar is None:
        from PIL import ImageDraw

        image = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
        draw = ImageDraw.Draw(image)
        draw.ellipse((8, 8, 248, 248), fill=(120, 144, 196, 255))
        draw.ellipse((88, 56, 168, 136), fill=(235, 240, 250, 255))
        draw.pieslice((48, 150, 208, 310), 180, 360, fill=(235, 240, 250, 255))
        _default_avatar = avatar_png(image, 256)
    return _default_avatar


def collage_png(pictures: list[bytes], size: int = 256) -> bytes:
    """Up to four images side by side (two) or in a square (three or four), as one PNG."""
    tiles = [Image.open(io.BytesIO(data)).convert("RGBA") for data in pictures[:4]]
    half = size // 2
    collage = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    if len(tiles) > 2:
        places, tile_size = [(0, 0), (half, 0), (0, half), (half, half)], (half, half)
    else:
        places, tile_size = [(0, 0), (half, 0)], (half, size)
    for tile, place in zip(tiles, places):
        collage.paste(tile.resize(tile_size), place)
    return avatar_png(collage, size)
