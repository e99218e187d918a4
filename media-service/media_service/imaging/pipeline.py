"""Turn one uploaded file into upright, metadata-free JPEG variants and a blurhash.

Everything here is a top-level function over plain data, so the service can run it in
a ProcessPoolExecutor: the path goes in, a picklable ProcessedImage or an
ImageRejected comes out.
"""

from dataclasses import dataclass, replace

from PIL import Image, ImageOps

from media_service.imaging.colour import to_srgb
from media_service.imaging.decode import (
    bomb_guard,
    decode,
    open_checked,
    orientation_of,
    request_draft,
    upright_size,
)
from media_service.imaging.errors import (
    CorruptImage,
    ImageRejected,
    ImageTooLarge,
    UnsupportedImage,
)
from media_service.imaging.sniff import SNIFF_BYTES, sniff_image_type
from media_service.imaging.variants import (
    AVATAR_SIDES,
    THUMBNAIL_SIDE,
    WIDTHS,
    Variant,
    blurhash_of,
    encode_jpeg,
    resize_cascade,
)

__all__ = [
    "CorruptImage",
    "ImageRejected",
    "ImageTooLarge",
    "ProcessedImage",
    "UnsupportedImage",
    "Variant",
    "process_avatar",
    "process_image",
]

_LARGEST_WIDTH = max(width for _, width in WIDTHS)
_VARIANT_ORDER = ("thumbnail", "small", "medium", "large")


@dataclass(frozen=True)
class ProcessedImage:
    """What an upload became: its upright size, a blurhash and the encoded variants."""

    content_type: str
    width: int
    height: int
    blurhash: str
    variants: tuple[Variant, ...]


def process_image(path: str, *, max_pixels: int, reduced_decode: bool = True) -> ProcessedImage:
    """Validate, decode, orient, convert to sRGB and re-encode the image at path."""
    content_type, width, height, rgb = _upright_srgb(
        path,
        max_pixels=max_pixels,
        min_width=_LARGEST_WIDTH if reduced_decode else None,
    )
    images = resize_cascade(rgb, width=width, height=height)
    return ProcessedImage(
        content_type=content_type,
        width=width,
        height=height,
        blurhash=blurhash_of(images["small"]),
        variants=_encode_all(images),
    )


def process_avatar(path: str, *, max_pixels: int) -> ProcessedImage:
    """As process_image, into an avatar's centre-cropped squares (AVATAR_SIDES)."""
    largest = max(AVATAR_SIDES.values())
    content_type, width, height, rgb = _upright_srgb(
        path, max_pixels=max_pixels, min_width=largest, min_side=largest
    )
    squares = {
        name: ImageOps.fit(rgb, (side, side), Image.Resampling.LANCZOS)
        for name, side in AVATAR_SIDES.items()
    }
    return ProcessedImage(
        content_type=content_type,
        width=width,
        height=height,
        blurhash=blurhash_of(squares["thumbnail"]),
        variants=tuple(encode_jpeg(name, img) for name, img in squares.items()),
    )


def _upright_srgb(
    path: str, *, max_pixels: int, min_width: int | None, min_side: int = THUMBNAIL_SIDE
) -> tuple[str, int, int, Image.Image]:
    """The image at path checked, decoded (at a reduced size of at least `min_width` when
    given), upright and in sRGB, with its type and upright size."""
    with open(path, "rb") as file:
        content_type = sniff_image_type(file.read(SNIFF_BYTES))
    if content_type is None:
        raise UnsupportedImage("Only JPEG, PNG, WebP and HEIC images are accepted.")
    with bomb_guard(), open_checked(path, content_type=content_type, max_pixels=max_pixels) as img:
        orientation = orientation_of(img)
        width, height = upright_size(img.size, orientation)
        if min_width is not None:
            request_draft(img, orientation=orientation, min_width=min_width, min_side=min_side)
        decode(img)
        # In place: for the usual orientation 1 this is a no-op instead of a full copy.
        ImageOps.exif_transpose(img, in_place=True)
    return content_type, width, height, to_srgb(img)


def _encode_all(images: dict[str, Image.Image]) -> tuple[Variant, ...]:
    """Encode every variant, once per distinct image (small originals share one)."""
    encoded: dict[int, Variant] = {}
    variants = []
    for name in _VARIANT_ORDER:
        img = images[name]
        if id(img) not in encoded:
            encoded[id(img)] = encode_jpeg(name, img)
        variants.append(replace(encoded[id(img)], name=name))
    return tuple(variants)
