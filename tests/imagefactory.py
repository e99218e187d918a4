"""Images made in memory for tests: real photos' quirks, hostile files and fakes.

Every function returns the file's bytes. Pictures are drawn with a fixed upright
pattern (see PATTERN) so a test can tell by pixel colour which way up a result is.
"""

import io
import struct
import zlib

from PIL import ExifTags, Image, ImageCms, ImageDraw

# Upright pattern: a red band along the top, a blue band along the bottom and a green
# band down the left of the middle; grey elsewhere. No rotation or mirror of it looks
# the same, so sampling four points tells the orientation apart.
GREY = (128, 128, 128)
RED = (220, 30, 30)
BLUE = (30, 30, 220)
GREEN = (30, 180, 30)
WHITE = (255, 255, 255)
PATTERN = {"top": RED, "bottom": BLUE, "left": GREEN, "right": GREY}

# Pillow transpositions that store an upright picture so that applying EXIF
# orientation n shows it upright again (the inverse of what exif_transpose does).
_STORE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
XMP_PACKET = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="PhotogramTestCam"/>'
    b"</rdf:RDF></x:xmpmeta>"
)
COMMENT = b"photogram test comment"
CAMERA = "PhotogramTestCam"


def upright_pattern(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """The reference picture, upright, width by height."""
    img = Image.new("RGB", (width, height), GREY)
    draw = ImageDraw.Draw(img)
    band_h, band_w = height // 4, width // 4
    draw.rectangle((0, 0, width - 1, band_h - 1), fill=RED)
    draw.rectangle((0, height - band_h, width - 1, height - 1), fill=BLUE)
    draw.rectangle((0, band_h, band_w - 1, height - band_h - 1), fill=GREEN)
    return img if mode == "RGB" else img.convert(mode)


def pattern_at(img: Image.Image) -> dict[str, tuple[int, ...]]:
    """The colours at the four sampling points of PATTERN in an RGB image."""
    width, height = img.size
    rgb = img.convert("RGB")
    return {
        "top": rgb.getpixel((width // 2, height // 8)),
        "bottom": rgb.getpixel((width // 2, height - 1 - height // 8)),
        "left": rgb.getpixel((width // 8, height // 2)),
        "right": rgb.getpixel((width - 1 - width // 8, height // 2)),
    }


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    """Whether two colours match within a JPEG-sized tolerance per channel."""
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def jpeg(
    width: int,
    height: int,
    *,
    exif_orientation: int | None = None,
    gps: bool = False,
    icc: bytes | None = None,
    xmp: bool = False,
    comment: bool = False,
    quality: int = 90,
) -> bytes:
    """A JPEG stored width by height; with an orientation its pixels are stored turned."""
    upright_w, upright_h = (height, width) if exif_orientation in (5, 6, 7, 8) else (width, height)
    img = upright_pattern(upright_w, upright_h)
    if exif_orientation in _STORE_FOR_ORIENTATION:
        img = img.transpose(_STORE_FOR_ORIENTATION[exif_orientation])
    extra: dict[str, object] = {}
    if exif_orientation is not None or gps:
        extra["exif"] = _exif(orientation=exif_orientation, gps=gps)
    if icc is not None:
        extra["icc_profile"] = icc
    if xmp:
        extra["xmp"] = XMP_PACKET
    if comment:
        extra["comment"] = COMMENT
    return _save(img, "JPEG", quality=quality, **extra)


def cmyk_jpeg(width: int, height: int) -> bytes:
    """A CMYK JPEG (as print workflows export) of solid red."""
    return _save(Image.new("CMYK", (width, height), (0, 255, 255, 0)), "JPEG", quality=95)


def grey_jpeg(width: int, height: int, level: int = 128, *, icc: bytes | None = None) -> bytes:
    """A flat RGB JPEG of one grey level, optionally tagged with an ICC profile."""
    extra = {"icc_profile": icc} if icc is not None else {}
    img = Image.new("RGB", (width, height), (level, level, level))
    return _save(img, "JPEG", quality=95, **extra)


def png(width: int, height: int, alpha: bool = False) -> bytes:
    """A PNG of the pattern; with alpha its right half is fully transparent."""
    img = upright_pattern(width, height)
    if alpha:
        img = img.convert("RGBA")
        mask = Image.new("L", (width, height), 255)
        ImageDraw.Draw(mask).rectangle((width // 2, 0, width - 1, height - 1), fill=0)
        img.putalpha(mask)
    return _save(img, "PNG")


def palette_png(width: int, height: int) -> bytes:
    """A palette PNG whose right half uses a transparent palette entry."""
    colours = [GREY, RED, BLUE, GREEN, (0, 0, 0)]
    transparent = colours.index((0, 0, 0))
    img = upright_pattern(width, height).quantize(palette=_palette_image(colours))
    ImageDraw.Draw(img).rectangle((width // 2, 0, width - 1, height - 1), fill=transparent)
    return _save(img, "PNG", transparency=transparent)


def grey16_png(width: int, height: int, level: int = 32768) -> bytes:
    """A 16-bit greyscale PNG of one level (0-65535)."""
    return _save(Image.new("I;16", (width, height), level), "PNG")


def webp(width: int, height: int) -> bytes:
    """A lossy WebP of the pattern."""
    return _save(upright_pattern(width, height), "WEBP", quality=90)


def heic(width: int, height: int) -> bytes:
    """A HEIC of the pattern, as an iPhone would send."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    return _save(upright_pattern(width, height), "HEIF", quality=90)


def avif(width: int, height: int) -> bytes:
    """An AVIF of the pattern."""
    return _save(upright_pattern(width, height), "AVIF", quality=90)


def gif(width: int, height: int) -> bytes:
    """A GIF, a real image of a type we do not accept."""
    return _save(upright_pattern(width, height), "GIF")


def bmp(width: int, height: int) -> bytes:
    """A BMP, a real image of a type we do not accept."""
    return _save(upright_pattern(width, height), "BMP")


def tiff(width: int, height: int) -> bytes:
    """A TIFF, a real image of a type we do not accept."""
    return _save(upright_pattern(width, height), "TIFF")


def svg() -> bytes:
    """An SVG with a script in it, which must never be served back."""
    return (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" '
        b'height="10"><script>alert(document.cookie)</script><rect width="10" '
        b'height="10" fill="red"/></svg>'
    )


def html() -> bytes:
    """An HTML page, which must never be served back as if it were an image."""
    return b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"


def text() -> bytes:
    """Plain text."""
    return b"just some words, not a picture\n"


def mp4_header() -> bytes:
    """The start of an MP4 video: an ftyp box with video brands only."""
    brands = b"isom" + b"\x00\x00\x02\x00" + b"isomiso2avc1mp41"
    return struct.pack(">I", 8 + len(brands)) + b"ftyp" + brands + b"\x00" * 16


def truncated_jpeg(width: int = 400, height: int = 300) -> bytes:
    """A JPEG cut off halfway through its image data."""
    data = jpeg(width, height)
    return data[: len(data) // 2]


def garbage_jpeg(width: int = 400, height: int = 300) -> bytes:
    """A valid JPEG header followed by bytes that are not image data."""
    data = jpeg(width, height)
    start_of_scan = data.index(b"\xff\xda")
    return data[: start_of_scan + 14] + bytes(range(256)) * 8


def huge_header_jpeg(width: int, height: int) -> bytes:
    """A tiny JPEG whose frame header claims width by height pixels."""
    data = bytearray(_save(Image.new("RGB", (16, 16), GREY), "JPEG"))
    sof = data.index(b"\xff\xc0")
    # SOF0: marker, length (2), precision (1), then height and width (2 each).
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A real PNG of width by height black 1-bit pixels that compresses to a few KB."""
    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    chunks = [compressor.compress(row) for _ in range(height)]
    idat = b"".join(chunks) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND")


def linear_srgb_icc() -> bytes:
    """An ICC v2 RGB profile with sRGB primaries and linear (gamma 1.0) curves.

    Grey 128 in this space is sRGB grey of about 188, so a test can tell whether the
    profile was honoured or ignored.
    """
    # sRGB colorants adapted to D50, as the standard sRGB profile lists them.
    colorants = {
        b"rXYZ": (0.4361, 0.2225, 0.0139),
        b"gXYZ": (0.3851, 0.7169, 0.0971),
        b"bXYZ": (0.1431, 0.0606, 0.7141),
    }
    curve = b"curv" + b"\x00" * 4 + struct.pack(">IH", 1, 0x0100) + b"\x00\x00"
    tags = [
        (b"desc", _icc_desc("Linear sRGB (test)")),
        (b"cprt", b"text" + b"\x00" * 4 + b"No copyright\x00"),
        (b"wtpt", _icc_xyz((0.9642, 1.0, 0.8249))),
        *((sig, _icc_xyz(xyz)) for sig, xyz in colorants.items()),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    return _icc_assemble(tags)


def sample_profile_is_valid(icc: bytes) -> bool:
    """Whether littlecms accepts the profile (a guard for the hand-built one above)."""
    try:
        ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (ImageCms.PyCMSError, OSError):
        return False
    return True


def _exif(*, orientation: int | None, gps: bool) -> Image.Exif:
    """An EXIF block with a camera name, and an orientation and GPS position if asked."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = CAMERA
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    if gps:
        exif[ExifTags.IFD.GPSInfo] = {
            ExifTags.GPS.GPSLatitudeRef: "N",
            ExifTags.GPS.GPSLatitude: (38.0, 42.0, 25.5),
            ExifTags.GPS.GPSLongitudeRef: "W",
            ExifTags.GPS.GPSLongitude: (9.0, 8.0, 21.1),
        }
    return exif


def _palette_image(colours: list[tuple[int, int, int]]) -> Image.Image:
    """A P-mode image carrying exactly these palette entries."""
    img = Image.new("P", (1, 1))
    img.putpalette([channel for colour in colours for channel in colour])
    return img


def _save(img: Image.Image, fmt: str, **params: object) -> bytes:
    """Encode img in fmt and return the bytes."""
    buffer = io.BytesIO()
    img.save(buffer, fmt, **params)
    return buffer.getvalue()


def _chunk(kind: bytes, body: bytes = b"") -> bytes:
    """One PNG chunk with its length and CRC."""
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _s15f16(value: float) -> bytes:
    """An ICC s15Fixed16Number."""
    return struct.pack(">i", round(value * 65536))


def _icc_xyz(xyz: tuple[float, float, float]) -> bytes:
    """An ICC XYZType element."""
    return b"XYZ " + b"\x00" * 4 + b"".join(_s15f16(v) for v in xyz)


def _icc_desc(name: str) -> bytes:
    """An ICC v2 textDescriptionType element with an ASCII name only."""
    ascii_name = name.encode("ascii") + b"\x00"
    return (
        b"desc"
        + b"\x00" * 4
        + struct.pack(">I", len(ascii_name))
        + ascii_name
        + struct.pack(">II", 0, 0)  # no Unicode description
        + struct.pack(">HB", 0, 0)  # no ScriptCode description
        + b"\x00" * 67
    )


def _icc_assemble(tags: list[tuple[bytes, bytes]]) -> bytes:
    """A display-class RGB ICC v2 profile from its tag elements."""
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    table, data = [struct.pack(">I", len(tags))], b""
    for sig, element in tags:
        padded = element + b"\x00" * (-len(element) % 4)
        table.append(sig + struct.pack(">II", offset + len(data), len(element)))
        data += padded
    body = b"".join(table) + data
    header = (
        struct.pack(">I", 128 + len(body))
        + b"\x00" * 4  # preferred CMM
        + struct.pack(">I", 0x02100000)  # version 2.1
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\x00" * 24  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # perceptual intent
        + _s15f16(0.9642)
        + _s15f16(1.0)
        + _s15f16(0.8249)
        + b"\x00" * 48  # creator, profile ID, reserved
    )
    assert len(header) == 128
    return header + body
