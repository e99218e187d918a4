"""Bring any decoded image to plain 8-bit sRGB RGB with no metadata attached."""

import functools
import io

from PIL import Image, ImageCms

from media_service.imaging.errors import UnsupportedImage

_WHITE = (255, 255, 255)
# Modes littlecms converts to sRGB directly, and the mode each comes out in.
_ICC_OUTPUT_MODE = {"RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB", "L": "RGB"}
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    """The sRGB profile, built once per process."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def to_srgb(img: Image.Image) -> Image.Image:
    """Return an RGB image in sRGB, alpha flattened on white and info emptied."""
    icc = img.info.get("icc_profile")
    if icc:
        img = _apply_icc(img, icc)
    img = _flatten(img)
    # Encoders copy some of info (a JPEG comment, for one) into their output.
    img.info = {}
    return img


def _apply_icc(img: Image.Image, icc: bytes) -> Image.Image:
    """Convert from the embedded profile to sRGB, or leave img as is if that fails."""
    output_mode = _ICC_OUTPUT_MODE.get(img.mode)
    if output_mode is None:
        return img
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(img, source, _srgb_profile(), outputMode=output_mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        # A broken or mismatched profile is metadata; the pixels are still usable.
        return img
    assert converted is not None
    return converted


def _flatten(img: Image.Image) -> Image.Image:
    """Drop alpha onto white and widen or narrow every other mode to 8-bit RGB."""
    if "transparency" in img.info and img.mode in ("P", "L", "RGB"):
        # A palette or colour-key transparency (PNG tRNS) is alpha too.
        img = img.convert("RGBA")
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        # A plain convert clips 16-bit samples to 255 instead of scaling them down.
        img = img.convert("I").point(lambda value: value / 257).convert("L")
    if img.mode == "RGB":
        return img
    try:
        return img.convert("RGB")
    except ValueError as exc:
        raise UnsupportedImage(f"Images in colour mode {img.mode} are not supported.") from exc
