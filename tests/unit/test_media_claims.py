"""media-service's signed claims on stored media, as post-service checks them on its own:
only a valid, unexpired claim of the caller names media (photogram_common.media_claims)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from photogram_contracts.identity import Identity
from photogram_contracts.schemas import MediaRead, VariantRead

from photogram_common.identity import InvalidToken, issue_internal_token, verify_internal_token
from photogram_common.media_claims import CLAIM_AUDIENCE, InvalidClaim, sign_claim, verify_claim

SECRET = "i" * 64  # long enough for HS512 too (a token naming it is refused)
ANA, BOB = 42, 43
NOW = 1_800_000_000.0


def media(media_id: int, owner: int = ANA) -> MediaRead:
    variant = VariantRead(url=f"/api/media/{media_id}/small.jpg", width=320, height=240)
    return MediaRead(
        media_id=str(media_id),
        user_id=str(owner),
        content_type="image/jpeg",
        width=640,
        height=480,
        blurhash="LEHV6nWB2yk8pyo0adR*.7kCMdnj",
        variants={"small": variant},
    )


def claim(*items: MediaRead, owner: int = ANA, ttl: float = 600, now: float = NOW) -> str:
    return sign_claim(secret=SECRET, owner_id=owner, media=items, ttl_seconds=ttl, now=now)


def test_a_valid_claim_names_its_media_in_upload_order() -> None:
    items = [media(7), media(5), media(9)]
    token = claim(*items)
    assert verify_claim(token, secret=SECRET, owner_id=ANA, now=NOW) == items
    assert verify_claim(token, secret=SECRET, owner_id=ANA, now=NOW + 599) == items


def test_an_expired_claim_is_refused() -> None:
    token = claim(media(7), ttl=600)
    with pytest.raises(InvalidClaim, match="expired"):
        verify_claim(token, secret=SECRET, owner_id=ANA, now=NOW + 600)
    with pytest.raises(InvalidClaim, match="expired"):
        verify_claim(token, secret=SECRET, owner_id=ANA, now=NOW + 86_400)


def test_a_claim_expires_by_the_real_clock_too() -> None:
    token = claim(media(7), ttl=60, now=time.time() - 61)
    with pytest.raises(InvalidClaim, match="expired"):
        verify_claim(token, secret=SECRET, owner_id=ANA)


def test_another_users_claim_is_refused() -> None:
    token = claim(media(7))
    with pytest.raises(InvalidClaim, match="owner"):
        verify_claim(token, secret=SECRET, owner_id=BOB, now=NOW)


def test_a_claim_on_someone_elses_media_is_refused_even_when_signed() -> None:
    token = claim(media(7), media(8, owner=BOB))
    with pytest.raises(InvalidClaim, match="owner's"):
        verify_claim(token, secret=SECRET, owner_id=ANA, now=NOW)


def test_a_claim_signed_with_another_secret_is_refused() -> None:
    forged = sign_claim(secret="x" * 48, owner_id=ANA, media=[media(7)], ttl_seconds=600, now=NOW)
    with pytest.raises(InvalidClaim, match="forged"):
        verify_claim(forged, secret=SECRET, owner_id=ANA, now=NOW)


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_tampered_claim_breaks_its_signature() -> None:
    header, _, signature = claim(media(7)).split(".")
    payload = {
        "aud": CLAIM_AUDIENCE,
        "sub": str(ANA),
        "iat": int(NOW),
        "exp": int(NOW) + 600,
        "media": [media(8).model_dump(mode="json")],  # another media, same signature
    }
    with pytest.raises(InvalidClaim, match="forged"):
        verify_claim(f"{header}.{_b64(payload)}.{signature}", secret=SECRET, owner_id=ANA, now=NOW)


def test_an_unsigned_claim_or_another_algorithm_is_refused() -> None:
    payload = {"aud": CLAIM_AUDIENCE, "sub": str(ANA), "iat": int(NOW), "exp": int(NOW) + 600}
    payload["media"] = [media(7).model_dump(mode="json")]
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}."
    with pytest.raises(InvalidClaim):
        verify_claim(unsigned, secret=SECRET, owner_id=ANA, now=NOW)
    hs512 = jwt.encode(payload, SECRET, algorithm="HS512")
    with pytest.raises(InvalidClaim):
        verify_claim(hs512, secret=SECRET, owner_id=ANA, now=NOW)


@pytest.mark.parametrize("garbage", ["", "not-a-token", "a.b.c", "x" * 5000])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(InvalidClaim):
        verify_claim(garbage, secret=SECRET, owner_id=ANA, now=NOW)


def test_a_claim_is_not_an_identity_and_an_identity_is_not_a_claim() -> None:
    # Both are signed with the internal secret: the audience keeps them apart.
    identity = issue_internal_token(secret=SECRET, identity=Identity(user_id=ANA, username="a"))
    with pytest.raises(InvalidClaim):
        verify_claim(identity, secret=SECRET, owner_id=ANA)
    with pytest.raises(InvalidToken):
        verify_internal_token(claim(media(7), now=time.time()), secret=SECRET)


@pytest.mark.parametrize(
    "items",
    [
        [],
        [media(7), media(7)],
        [media(i) for i in range(1, 12)],
    ],
    ids=["none", "twice", "eleven"],
)
def test_a_claim_names_1_to_10_distinct_media(items: list[MediaRead]) -> None:
    with pytest.raises(InvalidClaim, match="distinct"):
        verify_claim(claim(*items), secret=SECRET, owner_id=ANA, now=NOW)


def test_media_that_are_not_media_are_refused() -> None:
    payload = {
        "aud": CLAIM_AUDIENCE,
        "sub": str(ANA),
        "iat": int(NOW),
        "exp": int(NOW) + 600,
        "media": [{"media_id": "7"}],
    }
    with pytest.raises(InvalidClaim, match="malformed"):
        verify_claim(jwt.encode(payload, SECRET, "HS256"), secret=SECRET, owner_id=ANA, now=NOW)
    payload["media"] = [media(7).model_dump(mode="json") | {"media_id": "7 "}]
    with pytest.raises(InvalidClaim, match="IDs"):
        verify_claim(jwt.encode(payload, SECRET, "HS256"), secret=SECRET, owner_id=ANA, now=NOW)
