"""The page query a fast route takes, and what it leaves to the FastAPI route."""

from __future__ import annotations

import pytest

from photogram_common.fastroutes import header, page_query


def scope(query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> dict:
    return {"type": "http", "method": "GET", "query_string": query, "headers": headers or []}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", (20, None)),
        (b"limit=5", (5, None)),
        (b"limit=100", (100, None)),
        (b"cursor=abc", (20, "abc")),
        (b"limit=7&cursor=a%2Bb", (7, "a+b")),
    ],
)
def test_plain_page_queries_are_taken(query: bytes, expected: tuple[int, str | None]) -> None:
    assert page_query(scope(query)) == expected


@pytest.mark.parametrize(
    "query",
    [
        b"limit=0",
        b"limit=101",
        b"limit=007",
        b"limit=-1",
        b"limit=+5",
        b"limit=",
        b"cursor=",
        b"limit=1e2",
        b"limit=%D9%A1",  # an Arabic-Indic digit: str.isdigit() says yes, the route says no
        b"limit=5&limit=6",
        b"cursor=a&cursor=b",
        b"userId=1",
        b"other=1",
    ],
)
def test_anything_else_is_left_to_the_route(query: bytes) -> None:
    assert page_query(scope(query)) is None


def test_the_first_header_of_a_name_is_read() -> None:
    s = scope(headers=[(b"authorization", b"Bearer one"), (b"authorization", b"Bearer two")])
    assert header(s, b"authorization") == "Bearer one"
    assert header(s, b"x-missing") is None
