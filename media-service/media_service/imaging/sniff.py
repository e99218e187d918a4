"""Tell an image's type from its first bytes, never from its name or a header."""

# Enough for every signature below, including an ftyp box with a few compatible brands.
SNIFF_BYTES = 64

_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"
# ISO-BMFF brands of still HEIF images (HEVC-coded, generic HEIF, AVIF); video brands
# such as isom or mp42 share the container and must not pass.
_HEIF_BRANDS = frozenset(
    b"heic heix heim heis hevc hevx hevm hevs mif1 mif2 msf1 avif avis".split()
)


def sniff_image_type(head: bytes) -> str | None:
    """Return the media type of a JPEG, PNG, WebP or HEIC/HEIF/AVIF image, else None."""
    if head.startswith(_JPEG):
        return "image/jpeg"
    if head.startswith(_PNG):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if _is_heif(head):
        return "image/heic"
    return None


def _is_heif(head: bytes) -> bool:
    """Whether the bytes open an ftyp box whose major or compatible brand is a HEIF one."""
    if head[4:8] != b"ftyp":
        return False
    box_size = int.from_bytes(head[0:4], "big")
    if box_size < 16:
        return False
    box = head[: min(box_size, len(head))]
    # Major brand at 8, minor version at 12, compatible brands from 16 in steps of 4.
    brands = [box[8:12]] + [box[i : i + 4] for i in range(16, len(box) - 3, 4)]
    return any(brand in _HEIF_BRANDS for brand in brands)
