"""IDs: 64-bit, time-ordered, unique across workers, monotonic when the clock steps back."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor

from photogram_common.ids import EPOCH_MS, IdGenerator, id_to_unix_ms, parse_id


def test_ids_carry_their_creation_millisecond() -> None:
    generator = IdGenerator(5, clock=lambda: EPOCH_MS + 123_456)
    snowflake = generator.next_id()
    assert id_to_unix_ms(snowflake) == EPOCH_MS + 123_456
    assert 0 < snowflake < 2**63


def test_monotonic_even_when_the_clock_steps_back() -> None:
    now = [EPOCH_MS + 10_000]
    generator = IdGenerator(1, clock=lambda: now[0])
    made = []
    for step in (0, 0, -5_000, -1, 3, -10_000, 0):
        now[0] += step
        made.append(generator.next_id())
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_sequence_overflow_borrows_the_next_millisecond() -> None:
    generator = IdGenerator(1, clock=lambda: EPOCH_MS + 50)
    made = [generator.next_id() for _ in range(5000)]  # more than 4096 in one millisecond
    assert made == sorted(made)
    assert len(set(made)) == 5000


def test_unique_across_threads() -> None:
    generator = IdGenerator(7)
    with ThreadPoolExecutor(max_workers=8) as pool:
        batches = list(pool.map(lambda _: [generator.next_id() for _ in range(2000)], range(8)))
    flat = [i for batch in batches for i in batch]
    assert len(set(flat)) == len(flat)


def _make_ids(worker: int) -> list[int]:
    generator = IdGenerator(worker)
    return [generator.next_id() for _ in range(20_000)]


def test_unique_across_processes_with_distinct_workers() -> None:
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        first, second = pool.map(_make_ids, [1, 2])
    assert not set(first) & set(second)


def test_parse_id_accepts_only_positive_decimal_63_bit() -> None:
    assert parse_id("7258416120135680") == 7258416120135680
    for bad in ("", "-1", "0", "1e5", " 1", "9" * 20, str(2**63), "\uff10\uff11"):
        assert parse_id(bad) is None, bad


async def test_a_write_without_a_worker_id_is_a_503_problem_not_a_500() -> None:
    import httpx

    from photogram_common.web import create_service_app

    app = create_service_app(title="t", lifespan=None)
    unleased = IdGenerator(None)

    @app.post("/things")
    async def create() -> dict[str, int]:
        return {"id": unleased.next_id()}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        refused = await client.post("/things")
        unleased.assign(3)
        made = await client.post("/things")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    assert made.status_code == 200
    assert made.json()["id"] > 0
