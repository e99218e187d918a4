"""Open an untrusted file as an image and decode it, guarding size and type first."""

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pillow_heif
from PIL import ExifTags, Image, ImageFile

from media_service.imaging.errors import CorruptImage, ImageOutOfProportion, ImageTooLarge

# iPhones upload HEIC; Pillow reads AVIF itself, and HEIC only through this plugin.
pillow_heif.register_heif_opener()

# Only the plugin matching the sniffed bytes may parse the file, so a polyglot cannot
# be routed to a more fragile decoder.
PILLOW_FORMATS = {
    "image/jpeg": ("JPEG",),
    "image/png": ("PNG",),
    "image/webp": ("WEBP",),
    "image/heic": ("HEIF", "AVIF"),
}
# EXIF orientations that turn the stored image by a quarter, swapping width and height.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})
# The longer side at most this many times the shorter. Variants keep the aspect ratio and
# are at most 1080 wide, so none is taller than 60 x 1080 = 64,800 pixels, inside JPEG's
# 65,500-pixel limit; the widest phone panoramas are about 1:10.
MAX_ASPECT_RATIO = 60


@contextmanager
def bomb_guard() -> Iterator[None]:
    """Turn Pillow's decompression-bomb warning into an error, only inside the block."""
    # Pillow merely warns between 1x and 2x Image.MAX_IMAGE_PIXELS; catch_warnings puts
    # the process's filters back on exit. Our own max_pixels check runs before this one
    # matters, unless the caller sets max_pixels above Pillow's limit.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def open_checked(path: str, *, content_type: str, max_pixels: int) -> ImageFile.ImageFile:
    """Read only the header of the image at path and refuse it if it has too many pixels."""
    try:
        img = Image.open(path, formats=PILLOW_FORMATS[content_type])
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageTooLarge("The image has more pixels than allowed.") from exc
    except Exception as exc:
        raise CorruptImage("The file is not a readable image.") from exc
    width, height = img.size
    if width * height > max_pixels:
        img.close()
        raise ImageTooLarge(f"The image has {width * height} pixels; the limit is {max_pixels}.")
    if width < 1 or height < 1:
        img.close()
        raise CorruptImage("The image has no pixels.")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        img.close()
        raise ImageOutOfProportion(
            f"The image is {width} x {height} pixels; one side may be at most "
            f"{MAX_ASPECT_RATIO} times the other."
        )
    return img


def orientation_of(img: Image.Image) -> int:
    """The EXIF orientation (1-8), or 1 when absent or unreadable."""
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        # A malformed EXIF block is only metadata; the pixels may still be fine.
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """The (width, height) the image has once its EXIF orientation is applied."""
    width, height = size
    return (height, width) if orientation in _QUARTER_TURNS else (width, height)


def request_draft(
    img: ImageFile.ImageFile, *, orientation: int, min_width: int, min_side: int
) -> None:
    """Ask a JPEG decoder to scale down by DCT while keeping the outputs' needed size."""
    if img.format != "JPEG":
        return
    up_width, up_height = upright_size(img.size, orientation)
    scale = min(1.0, max(min_width / up_width, min_side / min(up_width, up_height)))
    if scale >= 1.0:
        return
    width, height = img.size
    # draft() picks the largest DCT reduction (1/2, 1/4, 1/8) that stays at or above
    # the requested size in the stored orientation, so round up.
    img.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))


def decode(img: ImageFile.ImageFile) -> None:
    """Decode the pixels, turning any decoder failure into CorruptImage."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Padding a cut-off file with grey would let corrupt uploads through.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False")
    try:
        img.load()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageTooLarge("The image has more pixels than allowed.") from exc
    except Exception as exc:
        raise CorruptImage("The image data is truncated or corrupt.") from exc
