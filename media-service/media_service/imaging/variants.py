"""Resize an upright sRGB image into the served variants and encode them as bare JPEG."""

import io
from dataclasses import dataclass

import blurhash
from PIL import Image, ImageOps

# Widest first: each one is resized from the one before it, which is far cheaper
# than resizing every variant from the decoded original.
WIDTHS = (("large", 1080), ("medium", 640), ("small", 320))
THUMBNAIL_SIDE = 150
# An avatar's variants: centre-cropped squares of these sides.
AVATAR_SIDES = {"thumbnail": 150, "small": 320}
JPEG_QUALITY = 85
# Four by three components over a 32-pixel copy: the blurhash package is pure Python,
# so its cost grows with every pixel it is given.
BLURHASH_COMPONENTS = (4, 3)
BLURHASH_SIDE = 32
_FILTER = Image.Resampling.LANCZOS


@dataclass(frozen=True)
class Variant:
    """One encoded rendition of an image."""

    name: str
    width: int
    height: int
    data: bytes


def resize_cascade(img: Image.Image, *, width: int, height: int) -> dict[str, Image.Image]:
    """The large, medium, small and thumbnail images, from an upright original's size."""
    images: dict[str, Image.Image] = {}
    current = img
    for name, target in WIDTHS:
        current = _fit_width(current, width=target, aspect=height / width)
        images[name] = current
    images["thumbnail"] = ImageOps.fit(
        _thumbnail_source(images, fallback=img), (THUMBNAIL_SIDE, THUMBNAIL_SIDE), _FILTER
    )
    return images


def encode_jpeg(name: str, img: Image.Image) -> Variant:
    """Encode img as a JPEG with no EXIF, ICC, XMP or comment segments."""
    buffer = io.BytesIO()
    # Only what is passed here is written; the image's info was emptied beforehand.
    # Optimised Huffman tables save ~7% of the bytes for ~3x the encode time of a
    # plain JPEG; progressive would save ~7% more but doubles the encode time again.
    img.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return Variant(name=name, width=img.width, height=img.height, data=buffer.getvalue())


def blurhash_of(img: Image.Image) -> str:
    """The blurhash of an RGB image, computed on a copy a few dozen pixels wide."""
    tiny = img.copy()
    tiny.thumbnail((BLURHASH_SIDE, BLURHASH_SIDE), Image.Resampling.BILINEAR)
    raw = tiny.tobytes()
    row_bytes = tiny.width * 3
    rows = [
        [list(raw[y * row_bytes + x * 3 : y * row_bytes + x * 3 + 3]) for x in range(tiny.width)]
        for y in range(tiny.height)
    ]
    x_components, y_components = BLURHASH_COMPONENTS
    return str(blurhash.encode(rows, x_components, y_components))


def _fit_width(img: Image.Image, *, width: int, aspect: float) -> Image.Image:
    """Resize to width keeping the original aspect ratio; never enlarge."""
    if img.width <= width:
        return img
    # The height comes from the original's aspect, not from the previous step's
    # rounded size, so every variant matches what a single resize would give.
    return img.resize((width, max(1, round(width * aspect))), _FILTER)


def _thumbnail_source(images: dict[str, Image.Image], *, fallback: Image.Image) -> Image.Image:
    """The smallest variant whose short side still covers the thumbnail square."""
    for name in ("small", "medium", "large"):
        if min(images[name].size) >= THUMBNAIL_SIDE:
            return images[name]
    return fallback
