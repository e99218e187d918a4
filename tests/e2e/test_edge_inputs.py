"""Hostile and odd inputs at the edge: each is a 4xx problem, never a 5xx, and leaves nothing.

Cursors, images, multipart framing, header bytes, body and header sizes, forwarded
addresses, rate limits for bad tokens, trailing slashes and control characters in text.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from PIL import Image

import gateway.ratelimit as ratelimit
import imagefactory as make
from gateway.addresses import ClientAddresses, parse_networks
from gateway.serving import gateway_server
from gateway.settings import GatewaySettings
from helpers import Api, eventually
from media_helpers import stored, upload

PROBLEM = "application/problem+json"
MB = 1024 * 1024
LEAKS = ("Traceback", "SELECT", "INSERT", "postgres", "sqlite", "-service", "Error", 'File "')


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["type"]
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
    assert 400 <= login.status_code < 500
    assert login.headers["content-type"].startswith(PROBLEM)
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


# 11. Size limits, before the body is read, on every route


@pytest.fixture
async def served(system: Any) -> AsyncIterator[str]:
    """The gateway behind its own server (gateway_server) on a loopback port: its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = gateway_server(system.gateway, GatewaySettings(host="127.0.0.1"), port=port)
    server.config.lifespan = "off"  # the system fixture runs the gateway's lifespan
    serving = asyncio.create_task(server.serve(sockets=[sock]))

    async def started() -> bool:
        return bool(server.started)

    await eventually(started)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def _stream(sent: list[int], first: bytes, chunk: bytes, count: int) -> AsyncIterator[bytes]:
    yield first
    for _ in range(count):
        sent[0] += len(chunk)
        yield chunk


@pytest.mark.parametrize("path", ["/api/auth/login", "/api/auth/signup", "/api/users/1/follow"])
@pytest.mark.parametrize(
    "content_type", ["multipart/form-data; boundary=x", "text/plain", "application/x-www-form"]
)
async def test_no_content_type_lifts_the_json_limit(
    api: Api, ana: dict[str, Any], path: str, content_type: str
) -> None:
    headers = {**ana["headers"], "content-type": content_type}
    declared = await api.client.post(path, content=b"x" * (2 * MB), headers=headers)
    assert_problem(declared, 413)
    sent = [0]
    chunk = b"x" * 65536
    streamed = await api.client.post(
        path, content=_stream(sent, b"--x\r\n", chunk, 16 * 8), headers=headers
    )
    assert "content-length" not in streamed.request.headers
    assert_problem(streamed, 413)
    assert sent[0] <= MB + 2 * len(chunk)


async def test_a_declared_body_over_the_limit_is_413_on_bodiless_methods_too(
    api: Api, ana: dict[str, Any]
) -> None:
    headers = {**ana["headers"], "content-length": str(2 * MB)}
    for method in ("GET", "DELETE"):
        request = api.client.build_request(method, "/api/users/me", headers=headers)
        request.stream = httpx.ByteStream(b"")
        assert_problem(await api.client.send(request), 413)


@pytest.mark.parametrize("system_overrides", [{"max_upload_mb": 1}])
async def test_an_upload_streamed_past_its_ceiling_is_413(
    api: Api, system: Any, ana: dict[str, Any], upload_tmp: Any
) -> None:
    """Without a Content-Length, ten files' worth (here 10 x 1 MB + 1 MB) is still the most
    that is relayed, even when the bytes past it are an epilogue the parser would skip."""
    before = await stored(system)
    form = (
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
        + make.jpeg(64, 48)
        + b"\r\n--x--\r\n"
    )
    sent = [0]
    chunk = b"e" * 65536
    response = await api.client.post(
        "/api/upload",
        content=_stream(sent, form, chunk, 16 * 14),  # 14 MB of epilogue
        headers={**ana["headers"], "content-type": "multipart/form-data; boundary=x"},
    )
    assert_problem(response, 413)
    assert sent[0] <= 11 * MB + 2 * len(chunk)
    assert await stored(system) == before
    assert spooled(upload_tmp) == []
    await assert_healthy(api, ana)


@pytest.mark.parametrize("where", ["headers", "query"])
async def test_a_request_head_over_the_cap_is_431(
    api: Api, ana: dict[str, Any], where: str
) -> None:
    if where == "headers":
        extra = {f"x-pad-{i}": "p" * 1000 for i in range(40)}
        response = await api.client.get("/api/users/me", headers={**ana["headers"], **extra})
    else:
        response = await api.client.get(
            "/api/users/me", params={"pad": "p" * 40_000}, headers=ana["headers"]
        )
    assert_problem(response, 431)
    fits = {f"x-pad-{i}": "p" * 1000 for i in range(20)}
    ok = await api.client.get("/api/users/me", headers={**ana["headers"], **fits})
    assert ok.status_code == 200


async def test_the_server_refuses_an_oversized_head_while_reading_it(
    served: str, api: Api, ana: dict[str, Any]
) -> None:
    """Up to 10 MB of headers: the 431 comes once the cap is passed, before the client has
    sent them all, and the server serves the next connection."""
    port = int(served.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answered = asyncio.create_task(reader.read())
    writer.write(b"GET /api/users/me HTTP/1.1\r\nHost: gateway\r\n")
    written = 0
    with contextlib.suppress(ConnectionError):
        for i in range(2000):
            if answered.done():
                break
            writer.write(b"X-Pad-%d: " % i + b"p" * 5000 + b"\r\n")
            written += 5000
            await writer.drain()
            await asyncio.sleep(0)
    answer = await asyncio.wait_for(answered, 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert PROBLEM.encode() in head
    assert b"x-request-id" in head.lower()
    assert json.loads(body)["status"] == 431
    assert written < 2 * MB
    async with httpx.AsyncClient(base_url=served) as client:
        assert (await client.get("/api/users/me", headers=ana["headers"])).status_code == 200


@pytest.mark.parametrize(
    ("parts", "loc"),
    [
        ([("other", b"o" * MB, "o.bin")], "other"),
        ([("other", b"tiny", None)], "other"),
        ([("", b"nameless", None)], ""),
        ([("caption", b"one", None), ("caption", b"two", None)], "caption"),
        ([("location", b"here", None), ("location", b"there", None)], "location"),
    ],
    ids=["unknown-1-mb", "unknown-small", "nameless", "two-captions", "two-locations"],
)
async def test_unknown_or_repeated_parts_are_refused(
    api: Api,
    system: Any,
    ana: dict[str, Any],
    upload_tmp: Any,
    parts: list[tuple[str, bytes, str | None]],
    loc: str,
) -> None:
    before = await stored(system)
    body = _form_part("file", make.jpeg(64, 48), "a.jpg")
    body += b"".join(_form_part(*part) for part in parts) + b"--x--\r\n"
    response = await api.client.post(
        "/api/upload",
        content=body,
        headers={**ana["headers"], "content-type": "multipart/form-data; boundary=x"},
    )
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"] == ["body", loc]
    assert await stored(system) == before
    assert spooled(upload_tmp) == []
    await assert_healthy(api, ana)


# 12. Forwarded addresses, bad tokens, trailing slashes


@pytest.fixture
def frozen_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold the limiter's clock mid-window, so a test never straddles two windows."""
    now = (int(time.time()) // 60) * 60 + 30.0
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: now))


@pytest.mark.parametrize("system_overrides", [{"rate_limit_per_minute": 20}])
async def test_a_spoofed_forwarded_for_does_not_escape_the_login_limit(
    served: str, frozen_window: None
) -> None:
    """Through the gateway's own server, on loopback: each attempt names another address."""
    async with httpx.AsyncClient(base_url=served) as client:
        statuses = []
        for i in range(4):
            response = await client.post(
                "/api/auth/login",
                json={"login": "nobody", "password": "guess"},
                headers={"x-forwarded-for": f"203.0.113.{i}", "forwarded": f"for=203.0.113.{i}"},
            )
            statuses.append(response.status_code)
    # max(1, 20 // 10) = 2 attempts per address and window.
    assert statuses == [401, 401, 429, 429]


@pytest.mark.parametrize("system_overrides", [{"rate_limit_per_minute": 20}])
async def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
    api: Api, system: Any, frozen_window: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def attempts(forwarded_for: str) -> list[int]:
        statuses = []
        for _ in range(3):
            response = await api.client.post(
                "/api/auth/login",
                json={"login": "nobody", "password": "guess"},
                headers={"x-forwarded-for": forwarded_for},
            )
            statuses.append(response.status_code)
        return statuses

    # The test client's peer is 127.0.0.1: trusted as a proxy here.
    trusted = ClientAddresses(parse_networks(["127.0.0.1", "10.0.0.0/8"]))
    monkeypatch.setattr(system.gateway.state.policy, "addresses", trusted)
    assert await attempts("198.51.100.1") == [401, 401, 429]
    # Another client behind the proxy has a budget of its own...
    assert await attempts("198.51.100.2, 10.1.2.3") == [401, 401, 429]
    # ...and what a client writes left of the address the proxy saw is not believed.
    assert await attempts("192.0.2.77, 198.51.100.1") == [429, 429, 429]
    assert await attempts("not-an-address, 198.51.100.3") == [401, 401, 429]


@pytest.mark.parametrize("system_overrides", [{"rate_limit_per_minute": 5}])
async def test_requests_with_bad_or_no_tokens_are_rate_limited_by_address(
    api: Api, frozen_window: None
) -> None:
    statuses = []
    for authorization in ["Bearer forged", "Bearer a.b.c", "Basic eDp5", "", "Bearer x"]:
        headers = {"authorization": authorization} if authorization else {}
        statuses.append((await api.client.get("/api/users/me", headers=headers)).status_code)
    assert statuses == [401] * 5
    limited = await api.client.get("/api/feed", headers={"authorization": "Bearer another"})
    assert_problem(limited, 429)
    assert 1 <= int(limited.headers["retry-after"]) <= 60


@pytest.mark.parametrize(
    "path", ["/api/users/me/", "/api/feed/", "/healthz/", "/api/auth/login/", "/api/upload/"]
)
async def test_a_trailing_slash_is_404_and_never_echoes_the_host(
    api: Api, ana: dict[str, Any], path: str
) -> None:
    headers = {**ana["headers"], "host": "evil.example"}
    for method in ("GET", "POST"):
        response = await api.client.request(method, path, headers=headers)
        assert response.status_code in (404, 405), response.text
        assert "location" not in response.headers
        assert "evil" not in response.text
        assert_problem(response, response.status_code)


# 14. Control characters in text


BAD_TEXT = {
    "nul": "a\x00b",
    "escape": "\x1b[2J",
    "del": "a\x7f",
    "c1": "a\x85b",
    "bell": "\x07",
    "lone-surrogate": "a\ud800b",
}


@pytest.mark.parametrize("field", ["first_name", "last_name", "location", "email"])
@pytest.mark.parametrize(
    "text",
    [*BAD_TEXT.values(), "two\nlines", "a\tb"],
    ids=[*BAD_TEXT, "newline", "tab"],
)
async def test_control_characters_in_signup_fields_are_422(api: Api, field: str, text: str) -> None:
    value = f"{text}@example.com" if field == "email" else f"Ana {text}"
    body = {
        "username": "cyd",
        "email": "cyd@example.com",
        "password": "correct horse battery",
        field: value,
    }
    response = await api.client.post(
        "/api/auth/signup",
        content=json.dumps(body).encode(),  # ensure_ascii: a lone surrogate as an escape
        headers={"content-type": "application/json"},
    )
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"] == ["body", field]
    # Nothing was written: the name is still free.
    cyd = await api.signup("cyd")
    assert cyd["user"]["first_name"] is None


@pytest.mark.parametrize("text", list(BAD_TEXT.values()), ids=list(BAD_TEXT))
async def test_control_characters_in_the_login_are_422(
    api: Api, ana: dict[str, Any], text: str
) -> None:
    body = {"login": f"ana{text}", "password": "correct horse battery"}
    response = await api.client.post(
        "/api/auth/login",
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"] == ["body", "login"]
    await assert_healthy(api, ana)


async def test_a_password_is_opaque_but_must_be_unicode(api: Api) -> None:
    opaque = "pass\x00word\twith\x1bcontrols"
    dee = await api.signup("dee", password=opaque)
    login = await api.client.post("/api/auth/login", json={"login": "dee", "password": opaque})
    assert login.status_code == 200, login.text
    body = {"username": "eve", "email": "eve@example.com", "password": "long enough \ud800"}
    response = await api.client.post(
        "/api/auth/signup",
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    assert assert_problem(response, 422)["errors"][0]["loc"] == ["body", "password"]
    await assert_healthy(api, dee)


UPLOAD_TEXT = {
    **{
        f"caption-{name}": ("caption", text.encode("utf-8", "surrogatepass"))
        for name, text in BAD_TEXT.items()
    },
    "caption-not-utf8": ("caption", b"caf\xe9"),
    **{
        f"location-{name}": ("location", text.encode("utf-8", "surrogatepass"))
        for name, text in BAD_TEXT.items()
    },
    "location-newline": ("location", b"Lisbon\nPorto"),
    "location-tab": ("location", b"Lisbon\tPorto"),
    "location-not-utf8": ("location", b"\xff"),
}


@pytest.mark.parametrize("case", UPLOAD_TEXT)
async def test_control_characters_in_caption_and_location_are_422(
    api: Api, system: Any, ana: dict[str, Any], upload_tmp: Any, case: str
) -> None:
    field, raw = UPLOAD_TEXT[case]
    before = await stored(system)
    body = _form_part("file", make.jpeg(64, 48), "a.jpg") + _form_part(field, raw) + b"--x--\r\n"
    response = await api.client.post(
        "/api/upload",
        content=body,
        headers={**ana["headers"], "content-type": "multipart/form-data; boundary=x"},
    )
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"] == ["body", field]
    assert await stored(system) == before
    assert spooled(upload_tmp) == []
    await assert_healthy(api, ana)


async def test_captions_keep_newlines_and_tabs_and_crlf_becomes_lf(
    api: Api, ana: dict[str, Any]
) -> None:
    files = [("a.jpg", make.jpeg(64, 48), "image/jpeg")]
    response = await upload(
        api, ana["headers"], files, caption="line one\r\nline two\n\tindented\rend 😀"
    )
    assert response.status_code == 201, response.text
    post = response.json()
    assert post["caption"] == "line one\nline two\n\tindented\nend 😀"
    fetched = await api.client.get(f"/api/post/{post['post_id']}", headers=ana["headers"])
    assert fetched.json()["caption"] == post["caption"]
