"""The image pipeline: sniff, guard, decode, orient, convert and re-encode uploads."""

from media_service.imaging.pipeline import (
    CorruptImage,
    ImageRejected,
    ImageTooLarge,
    ProcessedImage,
    UnsupportedImage,
    Variant,
    process_image,
)
from media_service.imaging.sniff import SNIFF_BYTES, sniff_image_type

__all__ = [
    "SNIFF_BYTES",
    "CorruptImage",
    "ImageRejected",
    "ImageTooLarge",
    "ProcessedImage",
    "UnsupportedImage",
    "Variant",
    "process_image",
    "sniff_image_type",
]
