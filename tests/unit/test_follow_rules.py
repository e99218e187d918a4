"""user-service's delivery rule: when an author is pulled at read time, with hysteresis."""

from __future__ import annotations

import pytest

from user_service.service import next_pulled, pulled_band


@pytest.mark.parametrize(
    ("threshold", "band"), [(1, 1), (3, 1), (10, 1), (19, 1), (20, 2), (10_000, 1_000)]
)
def test_the_band_is_a_tenth_of_the_threshold_and_at_least_one(threshold: int, band: int) -> None:
    assert pulled_band(threshold) == band


def test_an_author_is_pulled_from_the_threshold_up() -> None:
    assert not next_pulled(9_999, was=False, threshold=10_000)
    assert next_pulled(10_000, was=False, threshold=10_000)
    assert next_pulled(10_001, was=True, threshold=10_000)


def test_between_the_band_and_the_threshold_an_author_stays_as_they_were() -> None:
    for count in (9_001, 9_500, 9_999):
        assert next_pulled(count, was=True, threshold=10_000)
        assert not next_pulled(count, was=False, threshold=10_000)


def test_an_author_is_pushed_again_at_the_bands_edge_or_below() -> None:
    assert not next_pulled(9_000, was=True, threshold=10_000)
    assert not next_pulled(0, was=True, threshold=10_000)


def test_an_author_flapping_at_either_edge_crosses_once() -> None:
    """Follow, unfollow, follow... at the threshold: one crossing up, none back."""
    was, crossings = False, 0
    for count in [9_999, 10_000, 9_999, 10_000, 9_999, 10_000]:
        now = next_pulled(count, was=was, threshold=10_000)
        crossings += now != was
        was = now
    assert (was, crossings) == (True, 1)
    for count in [9_001, 9_000, 9_001, 9_000]:
        now = next_pulled(count, was=was, threshold=10_000)
        crossings += now != was
        was = now
    assert (was, crossings) == (False, 2)
