"""POST /api/upload through the gateway: what is accepted, what is refused, what is stored."""

from __future__ import annotations

import asyncio
import io
import tempfile
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import httpx
import pytest
from PIL import Image

import imagefactory as make
from helpers import Api, eventually
from media_helpers import assert_problem, fetch_variant, stored, swept, upload

SIZES = {"thumbnail": (150, 150), "small": (320, 427), "medium": (640, 853), "large": (900, 1200)}


def assert_upright(img: Image.Image) -> None:
    found = make.pattern_at(img)
    for place, colour in make.PATTERN.items():
        assert make.close_to(found[place], colour), (place, found)


def assert_no_metadata(data: bytes) -> None:
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG"
    assert not img.getexif()
    assert "exif" not in img.info
    assert "icc_profile" not in img.info
    assert b"Exif\x00\x00" not in data
    assert b"GPS" not in data
    assert make.CAMERA.encode() not in data
    assert b"xmpmeta" not in data


async def test_exif_orientation_is_applied_and_metadata_stripped_in_every_variant(api: Api) -> None:
    ana = await api.signup("ana")
    # Stored 1200 wide and 900 high, shown turned a quarter by orientation 6.
    photo = make.jpeg(1200, 900, exif_orientation=6, gps=True, xmp=True, comment=True)
    response = await upload(
        api,
        ana["headers"],
        [("photo.jpg", photo, "image/jpeg")],
        caption="upright",
        location="Lisbon",
    )
    assert response.status_code == 201, response.text
    post = response.json()
    assert response.headers["location"] == f"/api/post/{post['post_id']}"
    assert (post["caption"], post["location"], post["user_id"]) == ("upright", "Lisbon", ana["id"])
    assert post["author"] == {"user_id": ana["id"], "username": "ana"}
    [item] = post["media"]
    assert (item["width"], item["height"], item["content_type"]) == (900, 1200, "image/jpeg")
    assert item["user_id"] == ana["id"]
    assert item["blurhash"]
    assert set(item["variants"]) == set(SIZES)
    for name, variant in item["variants"].items():
        assert (variant["width"], variant["height"]) == SIZES[name], name
        fetched = await fetch_variant(api, variant["url"])
        assert fetched.status_code == 200, name
        assert fetched.headers["content-type"] == "image/jpeg"
        assert "immutable" in fetched.headers["cache-control"]
        # The gateway's own answer says nosniff: the bytes, or the redirect to the store.
        gateway_answer = (fetched.history or [fetched])[0]
        assert gateway_answer.headers["x-content-type-options"] == "nosniff"
        if fetched.history:
            assert gateway_answer.headers["cache-control"] == "no-store"
        assert_no_metadata(fetched.content)
        img = Image.open(io.BytesIO(fetched.content))
        assert img.size == SIZES[name], name
        if name != "thumbnail":  # the centre crop cuts the bands the pattern is read from
            assert_upright(img)


def _files(*files: tuple[str, bytes, str]) -> list[tuple[str, bytes, str]]:
    return list(files)


REFUSED = {
    "bomb": (413, _files(("bomb.png", make.bomb_png(), "image/png")), {}),
    "text-named-jpg": (415, _files(("notes.jpg", make.text(), "image/jpeg")), {}),
    "svg": (415, _files(("drawing.svg", make.svg(), "image/svg+xml")), {}),
    "svg-named-jpg": (415, _files(("drawing.jpg", make.svg(), "image/jpeg")), {}),
    "html": (415, _files(("page.jpg", make.html(), "image/jpeg")), {}),
    "gif": (415, _files(("anim.gif", make.gif(64, 48), "image/gif")), {}),
    "mp4": (415, _files(("clip.jpg", make.mp4_header(), "image/jpeg")), {}),
    "empty-file": (415, _files(("empty.jpg", b"", "image/jpeg")), {}),
    "truncated": (422, _files(("cut.jpg", make.truncated_jpeg(), "image/jpeg")), {}),
    "eleven-files": (422, [(f"{i}.jpg", make.jpeg(64, 48), "image/jpeg") for i in range(11)], {}),
    "21-mb": (
        413,
        _files(("big.jpg", make.jpeg(64, 48) + b"\0" * (21 * 1024 * 1024), "image/jpeg")),
        {},
    ),
    "long-caption": (
        422,
        _files(("ok.jpg", make.jpeg(64, 48), "image/jpeg")),
        {"caption": "c" * 2201},
    ),
    "long-emoji-caption": (
        422,
        _files(("ok.jpg", make.jpeg(64, 48), "image/jpeg")),
        {"caption": "\U0001f600" * 2201},
    ),
    "long-location": (
        422,
        _files(("ok.jpg", make.jpeg(64, 48), "image/jpeg")),
        {"location": "l" * 101},
    ),
    "no-file": (422, [], {"caption": "nothing attached"}),
    "good-then-corrupt": (
        422,
        _files(
            ("a.jpg", make.jpeg(400, 300), "image/jpeg"),
            ("b.png", make.png(300, 200), "image/png"),
            ("c.jpg", make.garbage_jpeg(), "image/jpeg"),
        ),
        {},
    ),
    "good-then-bomb": (
        413,
        _files(
            ("a.jpg", make.jpeg(400, 300), "image/jpeg"), ("b.png", make.bomb_png(), "image/png")
        ),
        {},
    ),
}


# Refusals of the form itself (not of an image) list what was wrong, as any 422 does.
VALIDATION_CASES = {
    "eleven-files",
    "long-caption",
    "long-emoji-caption",
    "long-location",
    "no-file",
}


@pytest.fixture
def upload_tmp(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A temp directory of this test's own, for the files an upload is spooled to."""
    directory = tmp_path / "spool"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


@pytest.mark.parametrize("case", REFUSED)
async def test_refused_upload_stores_nothing_and_leaves_the_service_healthy(
    api: Api, system: Any, upload_tmp: Any, case: str
) -> None:
    status, files, fields = REFUSED[case]
    ana = await api.signup("ana")
    before = await stored(system)
    if files:
        response = await upload(api, ana["headers"], files, **fields)
    else:
        # A form with fields only is still multipart: send them as parts of their own.
        response = await api.client.post(
            "/api/upload",
            headers=ana["headers"],
            files=[(name, (None, value)) for name, value in fields.items()],
        )
    body = assert_problem(response, status)
    if case in VALIDATION_CASES:
        assert body["errors"]
    assert await stored(system) == before
    assert list(upload_tmp.iterdir()) == []
    assert (await api.client.get("/readyz")).status_code == 200
    assert (await api.client.get("/api/users/me", headers=ana["headers"])).status_code == 200


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("application/json", b'{"file": "x"}', 415),
        ("image/jpeg", make.jpeg(64, 48), 415),
        ("application/x-www-form-urlencoded", b"caption=hi", 415),
        ("multipart/form-data", b"--x--\r\n", 400),
        ("multipart/form-data; boundary=x", b"not multipart at all", 400),
        ("multipart/form-data; boundary=x", b"", 422),
    ],
)
async def test_a_body_that_is_not_a_multipart_form_is_refused(
    api: Api, system: Any, upload_tmp: Any, content_type: str, body: bytes, status: int
) -> None:
    ana = await api.signup("ana")
    before = await stored(system)
    response = await api.client.post(
        "/api/upload", content=body, headers={**ana["headers"], "content-type": content_type}
    )
    assert_problem(response, status)
    assert await stored(system) == before
    assert list(upload_tmp.iterdir()) == []


async def test_limits_are_inclusive(api: Api, upload_tmp: Any) -> None:
    ana = await api.signup("ana")
    # Trailing bytes after a JPEG's end are ignored by decoders, so this is a valid photo.
    exactly_20_mb = make.jpeg(64, 48)
    exactly_20_mb += b"\0" * (20 * 1024 * 1024 - len(exactly_20_mb))
    caption = "\U0001f600" * 2200  # 2,200 characters of four UTF-8 bytes each
    response = await upload(
        api,
        ana["headers"],
        [("big.jpg", exactly_20_mb, "image/jpeg")],
        caption=caption,
        location="l" * 100,
    )
    assert response.status_code == 201, response.text
    assert response.json()["caption"] == caption
    assert list(upload_tmp.iterdir()) == []


async def test_empty_caption_and_location_are_none(api: Api) -> None:
    ana = await api.signup("ana")
    response = await upload(
        api, ana["headers"], [("a.jpg", make.jpeg(64, 48), "image/jpeg")], caption="", location=""
    )
    assert response.status_code == 201, response.text
    assert (response.json()["caption"], response.json()["location"]) == (None, None)


@pytest.mark.parametrize("system_overrides", [{"max_upload_mb": 1, "max_image_pixels": 500_000}])
async def test_the_limits_come_from_the_settings(api: Api, system: Any) -> None:
    ana = await api.signup("ana")
    before = await stored(system)
    over_1_mb = make.jpeg(64, 48) + b"\0" * (1024 * 1024)
    assert_problem(await upload(api, ana["headers"], [("a.jpg", over_1_mb, "image/jpeg")]), 413)
    many_pixels = make.png(1000, 501)
    assert_problem(await upload(api, ana["headers"], [("a.png", many_pixels, "image/png")]), 413)
    assert await stored(system) == before
    fits = await upload(api, ana["headers"], [("a.png", make.png(1000, 500), "image/png")])
    assert fits.status_code == 201, fits.text


async def test_upload_needs_a_token(api: Api, system: Any) -> None:
    before = await stored(system)
    response = await upload(api, {}, [("a.jpg", make.jpeg(64, 48), "image/jpeg")])
    assert_problem(response, 401)
    assert await stored(system) == before


ACCEPTED = {
    "heic": (make.heic(640, 480), "image/heic"),
    "png-alpha": (make.png(640, 480, alpha=True), "image/png"),
    "webp": (make.webp(640, 480), "image/webp"),
}


@pytest.mark.parametrize("kind", ACCEPTED)
async def test_heic_png_and_webp_are_accepted_and_served_as_jpeg(api: Api, kind: str) -> None:
    data, content_type = ACCEPTED[kind]
    ana = await api.signup("ana")
    # The name and the claimed type are the client's; the bytes decide.
    claimed = ("IMG_0001.bin", data, "application/octet-stream")
    response = await upload(api, ana["headers"], [claimed])
    assert response.status_code == 201, response.text
    [item] = response.json()["media"]
    assert (item["content_type"], item["width"], item["height"]) == (content_type, 640, 480)
    large = await fetch_variant(api, item["variants"]["large"]["url"])
    assert large.status_code == 200
    assert large.headers["content-type"] == "image/jpeg"
    img = Image.open(io.BytesIO(large.content))
    assert img.format == "JPEG"
    assert img.mode == "RGB"
    assert img.size == (640, 480)
    if kind == "png-alpha":
        # The transparent right half is flattened on white, not on black.
        assert make.close_to(img.getpixel((600, 240)), make.WHITE)
    else:
        assert_upright(img)


@pytest.mark.parametrize("count", [1, 2, 10])
async def test_media_keep_the_upload_order(api: Api, system: Any, count: int) -> None:
    ana = await api.signup("ana")
    # Each file has its own width, so the order can be read back from the media.
    widths = [200 + 37 * ((i * 7) % count) for i in range(count)]
    files = [(f"{i}.jpg", make.jpeg(width, 100), "image/jpeg") for i, width in enumerate(widths)]
    before = await stored(system)
    response = await upload(api, ana["headers"], files)
    assert response.status_code == 201, response.text
    post = response.json()
    assert [m["width"] for m in post["media"]] == widths
    fetched = (await api.client.get(f"/api/post/{post['post_id']}", headers=ana["headers"])).json()
    assert [m["media_id"] for m in fetched["media"]] == [m["media_id"] for m in post["media"]]
    after = await stored(system)
    assert after["media"] - before["media"] == count
    assert after["post_media"] - before["post_media"] == count
    assert after["posts"] - before["posts"] == 1
    assert after["blobs"] - before["blobs"] == 4 * count


async def test_a_failed_post_leaves_no_media_once_swept(
    api: Api, system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = await api.signup("ana")
    before = await stored(system)
    post_service = system.services["post-service"].state.posts

    async def broken_create(*_: Any, **__: Any) -> Any:
        raise RuntimeError("the posts database went away")

    monkeypatch.setattr(post_service, "create", broken_create)
    files = [
        ("a.jpg", make.jpeg(400, 300), "image/jpeg"),
        ("b.webp", make.webp(300, 200), "image/webp"),
    ]
    response = await upload(api, ana["headers"], files, caption="lost")
    body = assert_problem(response, 503)
    assert "database" not in body["detail"]
    assert "Traceback" not in response.text
    # Nothing was made of the media, so the sweeper (media-service, the one clean-up) deletes
    # them, objects included; nothing else does.
    assert (await stored(system))["media"] == before["media"] + 2
    assert await swept(system) == before
    assert (await api.client.get("/readyz")).status_code == 200


async def test_an_unreachable_post_service_leaves_no_media_behind(
    api: Api, system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = await api.signup("ana")
    before = await stored(system)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    posts_client = system.gateway.state.peers.posts
    monkeypatch.setattr(posts_client.http, "_transport", httpx.MockTransport(refuse))
    response = await upload(api, ana["headers"], [("a.jpg", make.jpeg(400, 300), "image/jpeg")])
    assert_problem(response, 503)
    assert response.headers["retry-after"]
    assert await swept(system) == before


async def test_a_large_upload_does_not_stall_other_requests(api: Api, system: Any) -> None:
    ana = await api.signup("ana")
    media = system.services["media-service"].state.media
    assert isinstance(media.executor, ProcessPoolExecutor)
    processing, processed = asyncio.Event(), asyncio.Event()
    real_process = media._process

    async def observed(path: str) -> Any:
        processing.set()
        try:
            return await real_process(path)
        finally:
            processed.set()

    media._process = observed
    photo = make.png(4000, 3000)  # 12 MP, and PNG has no reduced decode to make it cheap
    in_flight = asyncio.create_task(upload(api, ana["headers"], [("big.png", photo, "image/png")]))
    await asyncio.wait_for(processing.wait(), 60)
    me = await api.client.get("/api/users/me", headers=ana["headers"])
    assert me.status_code == 200
    # The other request was answered while the image was still being processed.
    assert not processed.is_set()
    assert not in_flight.done()
    response = await in_flight
    assert response.status_code == 201, response.text
    assert response.json()["media"][0]["width"] == 4000


@pytest.fixture
async def media_over_the_network(system: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Serve media-service on a loopback socket and make the gateway reach it over TCP,
    as in the multi-process deployment."""
    import socket

    import uvicorn

    from photogram_common.clients import make_transport

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            system.services["media-service"], lifespan="off", log_config=None, access_log=False
        )
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))

    async def started() -> bool:
        return bool(server.started)

    await eventually(started)
    media_client = system.gateway.state.peers.media
    network = make_transport(None)
    monkeypatch.setattr(media_client.http, "_transport", network)
    monkeypatch.setattr(media_client.http, "base_url", f"http://127.0.0.1:{port}")
    try:
        yield
    finally:
        await network.aclose()
        server.should_exit = True
        await serving


@pytest.mark.parametrize("case", ["21-mb", "eleven-files", "text-named-jpg"])
async def test_an_early_refusal_over_the_network_keeps_its_status(
    api: Api, system: Any, media_over_the_network: Any, case: str
) -> None:
    # media-service answers before it has read the whole body; the gateway must pass
    # that answer on, not turn the closed connection into a 503.
    status, files, fields = REFUSED[case]
    ana = await api.signup("ana")
    before = await stored(system)
    assert_problem(await upload(api, ana["headers"], files, **fields), status)
    assert await stored(system) == before
    ok = await upload(api, ana["headers"], [("a.jpg", make.jpeg(64, 48), "image/jpeg")])
    assert ok.status_code == 201, ok.text
