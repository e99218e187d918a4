"""The media-service image pipeline, on images made in memory by tests/imagefactory.py."""

import io
import pickle
import resource
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import blurhash
import pytest
from PIL import Image, ImageFile

from media_service.imaging import (
    CorruptImage,
    ImageRejected,
    ImageTooLarge,
    ProcessedImage,
    UnsupportedImage,
    process_image,
    sniff_image_type,
)
from media_service.imaging.decode import request_draft

# tests/ is a plain folder rather than a package, so put it on the path to share the
# image factory with the other test tiers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import imagefactory as make

MAX_PIXELS = 50_000_000


def run(
    tmp_path: Path, data: bytes, *, name: str = "upload.bin", **kwargs: object
) -> ProcessedImage:
    """Write data to a file called name and process it."""
    path = tmp_path / name
    path.write_bytes(data)
    options: dict = {"max_pixels": MAX_PIXELS, **kwargs}
    return process_image(str(path), **options)


def variants(result: ProcessedImage) -> dict[str, Image.Image]:
    """The decoded variants by name."""
    return {v.name: Image.open(io.BytesIO(v.data)) for v in result.variants}


def sizes(result: ProcessedImage) -> dict[str, tuple[int, int]]:
    """The declared (width, height) of each variant."""
    return {v.name: (v.width, v.height) for v in result.variants}


def assert_upright(img: Image.Image) -> None:
    """The reference pattern reads the right way up and the right way round."""
    found = make.pattern_at(img)
    for place, colour in make.PATTERN.items():
        assert make.close_to(found[place], colour), (place, found)


# sniffing


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (make.jpeg(16, 16), "image/jpeg"),
        (make.png(16, 16), "image/png"),
        (make.webp(16, 16), "image/webp"),
        (make.heic(64, 64), "image/heic"),
        (make.avif(64, 64), "image/heic"),
    ],
    ids=["jpeg", "png", "webp", "heic", "avif"],
)
def test_sniff_recognises_accepted_types(data: bytes, expected: str) -> None:
    assert sniff_image_type(data[:64]) == expected


@pytest.mark.parametrize(
    "data",
    [
        make.svg(),
        make.html(),
        make.text(),
        make.gif(16, 16),
        make.bmp(16, 16),
        make.tiff(16, 16),
        make.mp4_header(),
        b"",
        b"\xff\xd8",
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
    ],
    ids=["svg", "html", "text", "gif", "bmp", "tiff", "mp4", "empty", "short", "wav"],
)
def test_sniff_rejects_everything_else(data: bytes) -> None:
    assert sniff_image_type(data[:64]) is None


def test_sniff_accepts_a_generic_heif_brand_with_heic_compatible() -> None:
    head = b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic"
    assert sniff_image_type(head) == "image/heic"


# type checks come from the bytes


@pytest.mark.parametrize(
    "data",
    [make.svg(), make.html(), make.text(), make.gif(20, 20), make.bmp(20, 20), make.tiff(20, 20)],
    ids=["svg", "html", "text", "gif", "bmp", "tiff"],
)
def test_non_images_named_jpg_are_unsupported(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(UnsupportedImage) as caught:
        run(tmp_path, data, name="photo.jpg")
    assert caught.value.status == 415


def test_empty_file_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedImage):
        run(tmp_path, b"", name="photo.jpg")


def test_a_png_named_txt_is_still_a_png(tmp_path: Path) -> None:
    result = run(tmp_path, make.png(40, 30), name="notes.txt")
    assert result.content_type == "image/png"


# decompression bombs and the pixel limit


def test_bomb_png_is_refused_before_decoding(tmp_path: Path) -> None:
    data = make.bomb_png(20_000, 20_000)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge) as caught:
        run(tmp_path, data)
    # Decoding 400 MP would take seconds and hundreds of MB (ru_maxrss is in KiB).
    assert time.perf_counter() - started < 0.5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 50 * 1024
    assert caught.value.status == 413


def test_pillow_warning_band_is_an_error_even_under_a_higher_limit(tmp_path: Path) -> None:
    # 100 MP is above Pillow's 89 MP limit but below 2x, where Pillow only warns.
    with pytest.raises(ImageTooLarge):
        run(tmp_path, make.bomb_png(10_000, 10_000), max_pixels=10**9)


def test_warning_filters_are_left_as_they_were(tmp_path: Path) -> None:
    before = list(warnings.filters)
    with pytest.raises(ImageTooLarge):
        run(tmp_path, make.bomb_png(10_000, 10_000), max_pixels=10**9)
    run(tmp_path, make.jpeg(40, 30))
    assert warnings.filters == before


def test_header_claiming_huge_jpeg_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageTooLarge):
        run(tmp_path, make.huge_header_jpeg(60_000, 60_000))


def test_pixel_limit_is_inclusive(tmp_path: Path) -> None:
    assert run(tmp_path, make.jpeg(400, 300), max_pixels=120_000).width == 400
    with pytest.raises(ImageTooLarge):
        run(tmp_path, make.jpeg(400, 300), max_pixels=119_999)


# corrupt files


@pytest.mark.parametrize(
    "data",
    [make.truncated_jpeg(), make.garbage_jpeg(), make.jpeg(400, 300)[:300], make.png(64, 64)[:80]],
    ids=["truncated", "garbage", "header-only", "truncated-png"],
)
def test_corrupt_images_are_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(CorruptImage) as caught:
        run(tmp_path, data)
    assert caught.value.status == 422


@pytest.mark.parametrize("reduced_decode", [True, False])
def test_truncated_jpeg_fails_with_either_decode(tmp_path: Path, reduced_decode: bool) -> None:
    with pytest.raises(CorruptImage):
        run(tmp_path, make.truncated_jpeg(1600, 1200), reduced_decode=reduced_decode)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_back_upright(tmp_path: Path, orientation: int) -> None:
    result = run(tmp_path, make.jpeg(400, 300, exif_orientation=orientation))
    turned = orientation in (5, 6, 7, 8)
    assert (result.width, result.height) == ((300, 400) if turned else (400, 300))
    for name, img in variants(result).items():
        if name != "thumbnail":
            assert_upright(img)


def test_orientation_6_photo_is_upright_in_every_variant(tmp_path: Path) -> None:
    result = run(tmp_path, make.jpeg(400, 300, exif_orientation=6))
    assert (result.width, result.height) == (300, 400)
    images = variants(result)
    assert images["large"].size == (300, 400)
    assert_upright(images["large"])
    assert_upright(images["small"])
    thumb = images["thumbnail"]
    # The square is the middle 300 of 400 rows, so only the band edges show.
    assert make.close_to(thumb.getpixel((75, 5)), make.RED)
    assert make.close_to(thumb.getpixel((75, 144)), make.BLUE)
    assert make.close_to(thumb.getpixel((5, 75)), make.GREEN)


@pytest.mark.parametrize("reduced_decode", [True, False])
def test_turned_large_photo_keeps_full_size_after_reduced_decode(
    tmp_path: Path, reduced_decode: bool
) -> None:
    # Stored 2400x1800 and turned: 1080 upright pixels wide needs 1080 stored rows,
    # so a decode scaled for the stored width (1/2, 1200x900) would fall short.
    result = run(tmp_path, make.jpeg(2400, 1800, exif_orientation=6), reduced_decode=reduced_decode)
    assert (result.width, result.height) == (1800, 2400)
    assert sizes(result)["large"] == (1080, 1440)
    assert_upright(variants(result)["large"])


@pytest.mark.parametrize(
    ("stored", "orientation", "decoded"),
    [
        ((2400, 1800), 1, (1200, 900)),  # 1/2 still leaves 1080 columns
        ((4400, 3300), 1, (1100, 825)),  # 1/4 does too
        ((2400, 1800), 6, (2400, 1800)),  # upright it is 1800 wide: 1/2 would give 900
        ((4000, 500), 1, (2000, 250)),  # the short side must stay above 150
        ((1080, 1350), 1, (1080, 1350)),  # nothing to spare
    ],
)
def test_draft_keeps_the_largest_output_covered(
    tmp_path: Path, stored: tuple[int, int], orientation: int, decoded: tuple[int, int]
) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(make.jpeg(*stored, exif_orientation=orientation))
    with Image.open(path) as img:
        request_draft(img, orientation=orientation, min_width=1080, min_side=150)
        assert img.size == decoded


# metadata


def test_variants_carry_no_metadata(tmp_path: Path) -> None:
    data = make.jpeg(
        1200, 900, exif_orientation=6, gps=True, icc=make.linear_srgb_icc(), xmp=True, comment=True
    )
    original = Image.open(io.BytesIO(data))
    assert {"exif", "xmp", "icc_profile", "comment"} <= original.info.keys()
    result = run(tmp_path, data)
    for variant in result.variants:
        img = Image.open(io.BytesIO(variant.data))
        assert not {"exif", "xmp", "icc_profile", "comment", "photoshop"} & img.info.keys()
        assert len(img.getexif()) == 0
        # Only the JFIF APP0 header: no APP1 (EXIF, XMP), APP2 (ICC), APP13 or COM.
        assert [marker for marker, _ in img.applist] in ([], ["APP0"])
        for marker in (
            b"Exif",
            b"GPS",
            b"http://ns.adobe.com/xap",
            b"ICC_PROFILE",
            make.COMMENT,
            make.CAMERA.encode(),
        ):
            assert marker not in variant.data, (variant.name, marker)


# variant sizes


def test_variant_sizes_match_the_api_example(tmp_path: Path) -> None:
    result = run(tmp_path, make.jpeg(3024, 4032, quality=75))
    assert (result.width, result.height) == (3024, 4032)
    assert sizes(result) == {
        "thumbnail": (150, 150),
        "small": (320, 427),
        "medium": (640, 853),
        "large": (1080, 1440),
    }


def test_variants_are_never_upscaled(tmp_path: Path) -> None:
    result = run(tmp_path, make.jpeg(500, 400))
    assert sizes(result) == {
        "thumbnail": (150, 150),
        "small": (320, 256),
        "medium": (500, 400),
        "large": (500, 400),
    }


@pytest.mark.parametrize(("width", "height"), [(100, 80), (4000, 500), (500, 4000), (151, 151)])
def test_thumbnail_is_always_a_150_square(tmp_path: Path, width: int, height: int) -> None:
    result = run(tmp_path, make.jpeg(width, height))
    assert sizes(result)["thumbnail"] == (150, 150)
    assert variants(result)["thumbnail"].size == (150, 150)


def test_variants_are_rgb_jpegs_of_the_declared_size(tmp_path: Path) -> None:
    result = run(tmp_path, make.png(900, 700, alpha=True))
    assert [v.name for v in result.variants] == ["thumbnail", "small", "medium", "large"]
    for variant in result.variants:
        img = Image.open(io.BytesIO(variant.data))
        assert (img.format, img.mode) == ("JPEG", "RGB")
        assert img.size == (variant.width, variant.height)


def test_reduced_and_full_decode_agree(tmp_path: Path) -> None:
    data = make.jpeg(2400, 1800)
    reduced = run(tmp_path, data, reduced_decode=True)
    full = run(tmp_path, data, reduced_decode=False)
    assert sizes(reduced) == sizes(full)
    assert (reduced.width, reduced.height) == (full.width, full.height)
    for name, img in variants(reduced).items():
        other = variants(full)[name]
        for place, colour in make.pattern_at(img).items():
            assert make.close_to(colour, make.pattern_at(other)[place], tolerance=12)


# other formats and colour


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (make.webp(300, 200), "image/webp"),
        (make.heic(300, 200), "image/heic"),
        (make.avif(300, 200), "image/heic"),
        (make.png(300, 200), "image/png"),
    ],
    ids=["webp", "heic", "avif", "png"],
)
def test_other_formats_are_accepted(tmp_path: Path, data: bytes, content_type: str) -> None:
    result = run(tmp_path, data)
    assert (result.content_type, result.width, result.height) == (content_type, 300, 200)
    assert_upright(variants(result)["large"])


@pytest.mark.parametrize(
    "data", [make.png(300, 200, alpha=True), make.palette_png(300, 200)], ids=["rgba", "palette"]
)
def test_transparency_is_flattened_on_white(tmp_path: Path, data: bytes) -> None:
    large = variants(run(tmp_path, data))["large"]
    assert make.close_to(large.getpixel((290, 100)), make.WHITE, tolerance=8)
    assert make.close_to(large.getpixel((10, 100)), make.GREEN)


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    large = variants(run(tmp_path, make.cmyk_jpeg(200, 100)))["large"]
    assert make.close_to(large.getpixel((100, 50)), (255, 0, 0), tolerance=30)


def test_icc_profile_is_converted_to_srgb(tmp_path: Path) -> None:
    assert make.sample_profile_is_valid(make.linear_srgb_icc())
    tagged = variants(run(tmp_path, make.grey_jpeg(200, 100, icc=make.linear_srgb_icc())))
    untagged = variants(run(tmp_path, make.grey_jpeg(200, 100)))
    # Linear grey 128 is about 188 in sRGB; ignoring the profile would leave 128.
    assert make.close_to(tagged["large"].getpixel((100, 50)), (188, 188, 188), tolerance=4)
    assert make.close_to(untagged["large"].getpixel((100, 50)), (128, 128, 128), tolerance=4)


def test_16_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    large = variants(run(tmp_path, make.grey16_png(200, 100, level=32768)))["large"]
    assert make.close_to(large.getpixel((100, 50)), (128, 128, 128), tolerance=3)


# blurhash


def test_blurhash_has_4_by_3_components_and_follows_the_colours(tmp_path: Path) -> None:
    photo = run(tmp_path, make.jpeg(400, 300))
    black = run(tmp_path, make.grey_jpeg(64, 64, level=0))
    assert blurhash.components(photo.blurhash) == (4, 3)
    assert len(photo.blurhash) == 28
    assert photo.blurhash != black.blurhash


# the worker boundary


def test_results_and_errors_survive_pickling(tmp_path: Path) -> None:
    result = run(tmp_path, make.jpeg(400, 300))
    # Our own bytes, round-tripped as a ProcessPoolExecutor would.
    assert pickle.loads(pickle.dumps(result)) == result  # noqa: S301
    for error in (UnsupportedImage("x"), ImageTooLarge("y"), CorruptImage("z")):
        copy = pickle.loads(pickle.dumps(error))  # noqa: S301
        assert (type(copy), copy.status, copy.title, copy.detail) == (
            type(error),
            error.status,
            error.title,
            error.detail,
        )
        assert isinstance(copy, ImageRejected)


def test_runs_in_a_process_pool(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
    good.write_bytes(make.jpeg(400, 300, exif_orientation=6))
    bad.write_bytes(make.svg())
    with ProcessPoolExecutor(max_workers=1) as pool:
        result = pool.submit(process_image, str(good), max_pixels=MAX_PIXELS).result()
        refused = pool.submit(process_image, str(bad), max_pixels=MAX_PIXELS).exception()
    assert (result.width, result.height) == (300, 400)
    assert isinstance(refused, UnsupportedImage)
