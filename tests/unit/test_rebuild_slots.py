"""The bound on concurrent timeline rebuilds: past it a fast 503, and the slot comes back."""

from __future__ import annotations

import pytest

from feed_service.service import RebuildSlots
from feed_service.settings import DEFAULT_MAX_REBUILDS, FeedServiceSettings
from photogram_common.problems import Problem


async def test_a_rebuild_past_the_bound_is_refused_and_a_finished_one_frees_its_slot() -> None:
    slots = RebuildSlots(2)
    async with slots.take(), slots.take():
        with pytest.raises(Problem) as refused:
            async with slots.take():
                pass
        assert slots.running == 2
    assert refused.value.status == 503
    assert refused.value.headers == {"Retry-After": "1"}
    assert slots.running == 0
    async with slots.take():
        assert slots.running == 1


async def test_a_failed_rebuild_frees_its_slot() -> None:
    slots = RebuildSlots(1)
    with pytest.raises(RuntimeError):
        async with slots.take():
            raise RuntimeError("the source of truth is down")
    assert slots.running == 0


async def test_no_bound_admits_any_number() -> None:
    slots = RebuildSlots(0)
    async with slots.take(), slots.take(), slots.take():
        assert slots.running == 3


def test_the_bound_is_on_by_default_in_the_distributed_mode_only() -> None:
    assert FeedServiceSettings().rebuild_bound(embedded=True) == 0
    assert FeedServiceSettings().rebuild_bound(embedded=False) == DEFAULT_MAX_REBUILDS
    assert FeedServiceSettings(max_rebuilds=0).rebuild_bound(embedded=False) == 0
    assert FeedServiceSettings(max_rebuilds=3).rebuild_bound(embedded=True) == 3
