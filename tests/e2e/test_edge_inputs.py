"""Hostile and odd inputs at the edge: each is a 4xx problem, never a 5xx, and leaves nothing.

Cursors, images, multipart framing, header bytes, body and header sizes, forwarded
addresses, rate limits for bad tokens, trailing slashes and control characters in text.
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
from typing import Any

import httpx
import pytest
from PIL import Image

import imagefactory as make
from helpers import Api
from media_helpers import stored, upload

PROBLEM = "application/problem+json"
MB = 1024 * 1024
LEAKS = ("Traceback", "SELECT", "INSERT", "postgres", "sqlite", "-service", "Error", 'File "')


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    for leak in LEAKS:
        assert leak not in response.text, leak
    assert response.headers["x-request-id"]
    if status == 422:
        assert body["errors"], body
    return body


async def assert_healthy(api: Api, user: dict[str, Any]) -> None:
    assert (await api.client.get("/readyz")).status_code == 200
    assert (await api.client.get("/api/users/me", headers=user["headers"])).status_code == 200


@pytest.fixture
async def ana(api: Api) -> dict[str, Any]:
    return await api.signup("ana")


@pytest.fixture
def upload_tmp(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A temp directory of this test's own, for the files an upload is spooled to."""
    directory = tmp_path / "spool"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


def spooled(directory: Any) -> list[Any]:
    """The uploads' temp directories left in `directory` (the process pool keeps its own)."""
    return list(directory.glob("photogram-upload-*"))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _tall_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), make.GREY).save(buffer, "PNG")
    return buffer.getvalue()


def _form_part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--x\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


# 10. Inputs that used to be a 5xx

PAGES = [
    "/api/users/{id}/followers",
    "/api/users/{id}/following",
    "/api/users/{id}/posts",
    "/api/feed",
]


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize(
    "cursor",
    [_b64(b"[" * 5000), _b64(b"[" * 100 + b"1" + b"]" * 100), "A" * 5000],
    ids=["nested-5000", "nested-100", "long"],
)
async def test_a_deeply_nested_or_long_cursor_is_400(
    api: Api, ana: dict[str, Any], path: str, cursor: str
) -> None:
    response = await api.client.get(
        path.format(id=ana["id"]), params={"cursor": cursor}, headers=ana["headers"]
    )
    assert_problem(response, 400)
    await assert_healthy(api, ana)


@pytest.mark.parametrize("size", [(1, 70000), (700, 70000), (70000, 1), (1, 61)])
async def test_an_image_too_long_and_thin_is_a_422_naming_the_file(
    api: Api, system: Any, ana: dict[str, Any], upload_tmp: Any, size: tuple[int, int]
) -> None:
    """Its variants could not keep its aspect ratio within JPEG's 65,500 pixels: refused."""
    before = await stored(system)
    files = [
        ("a.jpg", make.jpeg(64, 48), "image/jpeg"),
        ("thin.png", _tall_png(*size), "image/png"),
    ]
    body = assert_problem(await upload(api, ana["headers"], files), 422)
    assert body["errors"][0]["loc"] == ["body", "file", "1"]
    assert "60 times" in body["detail"]
    assert await stored(system) == before
    assert spooled(upload_tmp) == []
    await assert_healthy(api, ana)


async def test_an_image_at_the_aspect_limit_is_accepted(api: Api, ana: dict[str, Any]) -> None:
    response = await upload(api, ana["headers"], [("a.png", _tall_png(20, 1200), "image/png")])
    assert response.status_code == 201, response.text
    variants = response.json()["media"][0]["variants"]
    assert (variants["large"]["width"], variants["large"]["height"]) == (20, 1200)


@pytest.mark.parametrize(
    "boundary",
    ["x" * 71, "x" * 300, "x" * 5000, "a;b", 'a"b', "ends-with-space ", "tab\there"],
)
async def test_a_bad_multipart_boundary_is_400_and_leaks_no_temp_dir(
    api: Api, system: Any, ana: dict[str, Any], upload_tmp: Any, boundary: str
) -> None:
    before = await stored(system)
    body = f"--{boundary}\r\n".encode() + b'Content-Disposition: form-data; name="file"\r\n\r\n'
    body += make.jpeg(64, 48) + f"\r\n--{boundary}--\r\n".encode()
    content_type = f'multipart/form-data; boundary="{boundary}"'
    for _ in range(3):
        response = await api.client.post(
            "/api/upload", content=body, headers={**ana["headers"], "content-type": content_type}
        )
        assert_problem(response, 400)
    assert spooled(upload_tmp) == []
    assert await stored(system) == before
    await assert_healthy(api, ana)


async def test_a_70_character_boundary_is_accepted(api: Api, ana: dict[str, Any]) -> None:
    boundary = "b" * 70
    body = f"--{boundary}\r\n".encode()
    body += b'Content-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
    body += make.jpeg(64, 48) + f"\r\n--{boundary}--\r\n".encode()
    response = await api.client.post(
        "/api/upload",
        content=body,
        headers={**ana["headers"], "content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 201, response.text


NON_ASCII_CONTENT_TYPES = [
    b"multipart/form-data; boundary=\xe9t\xe9",
    b"multipart/form-d\xe4ta; boundary=x",
    b"application/j\xffson",
]


@pytest.mark.parametrize("content_type", NON_ASCII_CONTENT_TYPES)
async def test_non_ascii_bytes_in_content_type_are_a_4xx(
    api: Api, system: Any, ana: dict[str, Any], upload_tmp: Any, content_type: bytes
) -> None:
    before = await stored(system)
    headers = {**ana["headers"], "content-type": content_type}
    response = await api.client.post("/api/upload", content=b"--x--\r\n", headers=headers)
    assert_problem(response, 400)
    login = await api.client.post("/api/auth/login", content=b"{}", headers=headers)
    assert 400 <= login.status_code < 500 and login.headers["content-type"].startswith(PROBLEM)
    follow = await api.client.post(f"/api/users/{ana['id']}/follow", content=b"{}", headers=headers)
    assert 400 <= follow.status_code < 500, follow.text
    assert spooled(upload_tmp) == []
    assert await stored(system) == before
    await assert_healthy(api, ana)


@pytest.mark.parametrize(
    "header", ["authorization", "x-request-id", "x-forwarded-for", "accept", "cookie", "host"]
)
async def test_non_ascii_bytes_in_other_headers_are_never_a_5xx(
    api: Api, ana: dict[str, Any], header: str
) -> None:
    value = b"Bearer \xe9\xff\x80" if header == "authorization" else b"\xe9\xff\x80"
    for method, path in [
        ("GET", "/api/users/me"),
        ("POST", "/api/auth/login"),
        ("GET", "/api/media/1/small.jpg"),
        ("GET", "/healthz"),
    ]:
        headers = (
            {header: value} if header == "authorization" else {**ana["headers"], header: value}
        )
        response = await api.client.request(method, path, headers=headers, json={"login": "x"})
        assert response.status_code < 500, (header, path, response.text)
    await assert_healthy(api, ana)


async def test_a_lone_surrogate_in_a_json_key_is_a_422(api: Api) -> None:
    body = json.dumps({"login": "ana", "password": "x", "\ud800": 1}).encode()
    response = await api.client.post(
        "/api/auth/login", content=body, headers={"content-type": "application/json"}
    )
    assert_problem(response, 422)


async def test_deeply_nested_json_is_a_4xx(api: Api) -> None:
    body = b'{"login": ' + b"[" * 100_000 + b"]" * 100_000 + b', "password": "x"}'
    response = await api.client.post(
        "/api/auth/login", content=body, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith(PROBLEM)


# Image refusals list what was wrong, as every 422 does


@pytest.mark.parametrize(
    ("files", "index"),
    [
        ([("cut.jpg", make.truncated_jpeg(), "image/jpeg")], "0"),
        (
            [
                ("a.jpg", make.jpeg(400, 300), "image/jpeg"),
                ("b.png", make.png(300, 200), "image/png"),
                ("c.jpg", make.garbage_jpeg(), "image/jpeg"),
            ],
            "2",
        ),
    ],
    ids=["truncated", "good-then-corrupt"],
)
async def test_a_corrupt_image_is_a_422_naming_the_file(
    api: Api, system: Any, ana: dict[str, Any], files: list[Any], index: str
) -> None:
    before = await stored(system)
    problem = assert_problem(await upload(api, ana["headers"], files), 422)
    assert problem["errors"] == [
        {"loc": ["body", "file", index], "msg": problem["detail"], "type": "value_error"}
    ]
    assert await stored(system) == before
