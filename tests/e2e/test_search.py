"""Finding people through the gateway: a prefix of the username or of a name, any case,
the exact username first, then the most followed (docs/api.md, the social layer)."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import Api
from media_helpers import assert_problem


async def search(api: Api, who: dict[str, Any], q: str, **params: Any) -> Any:
    response = await api.client.get(
        "/api/users/search", headers=who["headers"], params={"q": q, **params}
    )
    assert response.status_code == 200, response.text
    return response.json()


def names(page: Any) -> list[str]:
    return [u["username"] for u in page["items"]]


async def follow(api: Api, who: dict[str, Any], whom: dict[str, Any]) -> None:
    response = await api.client.post(f"/api/users/{whom['id']}/follow", headers=who["headers"])
    assert response.status_code == 200, response.text


async def test_a_prefix_of_the_username_or_a_name_finds_the_user_in_any_case(api: Api) -> None:
    me = await api.signup("viewer")
    await api.signup("anabela", first_name="Maria")
    await api.signup("zed", first_name="Ana", last_name="Costa")
    await api.signup("yan", last_name="Anand")
    await api.signup("bob", first_name="Banana")  # "ana" inside, not at the start
    assert sorted(names(await search(api, me, "ana"))) == ["anabela", "yan", "zed"]
    assert sorted(names(await search(api, me, "ANA"))) == ["anabela", "yan", "zed"]
    assert names(await search(api, me, "cos")) == ["zed"]
    assert names(await search(api, me, "nobody")) == []
    item = (await search(api, me, "zed"))["items"][0]
    assert (item["first_name"], item["last_name"], item["bio"]) == ("Ana", "Costa", "")


async def test_the_exact_username_comes_first_then_the_most_followed(api: Api) -> None:
    me = await api.signup("viewer")
    sam = await api.signup("sam")
    samir = await api.signup("samir")
    samuel = await api.signup("samuel")
    fans = [await api.signup(f"fan{i}") for i in range(3)]
    for fan in fans:
        await follow(api, fan, samuel)
    await follow(api, fans[0], samir)
    assert names(await search(api, me, "sam")) == ["sam", "samuel", "samir"]
    assert names(await search(api, me, "sami")) == ["samir"]
    assert sam["id"] != samir["id"]


async def test_pages_follow_the_cursor_exactly_with_the_exact_match_once(api: Api) -> None:
    me = await api.signup("viewer")
    people = [await api.signup(name) for name in ("kai", "kaia", "kaiden", "kaila", "kairo")]
    for i, person in enumerate(people[1:], start=1):  # kaia 1 follower ... kairo 4
        for fan in range(i):
            who = await api.signup(f"f{i}x{fan}")
            await follow(api, who, person)
    expected = ["kai", "kairo", "kaila", "kaiden", "kaia"]
    for limit in (1, 2, 3, 5, 10):
        seen, cursor = [], None
        while True:
            params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            page = await search(api, me, "kai", **params)
            assert len(page["items"]) <= limit
            seen += names(page)
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == expected, limit


async def test_a_short_prefix_walked_from_the_most_followed_pages_exactly(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to three letters walk the most followed first, a few users at a time here, and
    fall back to the prefix indexes when a walk finds less than a page: the same order."""
    from user_service import repository

    monkeypatch.setattr(repository, "WALKED_USERS", 5)
    me = await api.signup("viewer")
    # Most followed first: matches of "k" interleaved with people who do not match.
    ranked = ["kat", "mona", "kim", "mia", "max", "kurt", "mel", "kora"]
    names_of = {"max": {"first_name": "Kelly"}}
    people = [await api.signup(name, **names_of.get(name, {})) for name in ranked]
    await api.signup("kip")  # no followers: after every other match
    fans = [await api.signup(f"fan{i}") for i in range(len(people))]
    for rank, person in enumerate(people):
        for fan in fans[: len(people) - rank]:
            await follow(api, fan, person)
    expected = ["kat", "kim", "max", "kurt", "kora", "kip"]
    for q in ("k", "K"):
        for limit in (1, 2, 3, 4, 10):
            seen, cursor = [], None
            while True:
                params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
                page = await search(api, me, q, **params)
                assert len(page["items"]) <= limit
                seen += names(page)
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen == expected, (q, limit)


async def test_like_wildcards_in_the_query_are_literal(api: Api) -> None:
    me = await api.signup("viewer")
    await api.signup("a_b")
    await api.signup("axb")
    assert names(await search(api, me, "a_")) == ["a_b"]
    assert names(await search(api, me, "%")) == []


@pytest.mark.parametrize("q", ["", "   ", "a\x00", "a" * 101])
async def test_an_empty_or_unreadable_query_is_a_422(api: Api, q: str) -> None:
    me = await api.signup("viewer")
    response = await api.client.get("/api/users/search", headers=me["headers"], params={"q": q})
    assert_problem(response, 422)


async def test_search_needs_a_token(api: Api) -> None:
    assert_problem(await api.client.get("/api/users/search", params={"q": "a"}), 401)


async def test_a_cursor_past_any_count_is_a_400(api: Api) -> None:
    from photogram_common.cursors import encode_cursor

    me = await api.signup("viewer")
    response = await api.client.get(
        "/api/users/search",
        headers=me["headers"],
        params={"q": "a", "cursor": encode_cursor(2**40, 1)},
    )
    assert_problem(response, 400)
