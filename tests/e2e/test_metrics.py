"""The embedded mode's one /metrics: every service's metrics, each sample naming its service,
requests named by their route template, never by their raw path."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from helpers import Api, eventually, feed_ids, post_photo

Samples = dict[str, list[tuple[dict[str, str], float]]]


async def scrape(api: Api) -> tuple[str, Samples]:
    response = await api.client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return response.text, samples


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(
        value
        for found, value in samples.get(name, [])
        if all(found.get(k) == v for k, v in labels.items())
    )


async def test_metrics_after_a_workload(api: Api) -> None:
    _, before = await scrape(api)
    ana = await api.signup("metrics_ana")
    bob = await api.signup("metrics_bob")
    followed = await api.client.post(f"/api/users/{ana['id']}/follow", headers=bob["headers"])
    assert followed.status_code == 200
    assert await feed_ids(api.client, bob) == []
    post_id = await post_photo(api.client, ana, "measured")

    async def delivered() -> bool:
        return post_id in await feed_ids(api.client, bob)

    await eventually(delivered)
    looked_up = await api.client.get("/api/users/123", headers=bob["headers"])
    assert looked_up.status_code == 404

    async def published() -> Samples | None:
        _, now = await scrape(api)
        grew = total(now, "photogram_outbox_published_total") > total(
            before, "photogram_outbox_published_total"
        )
        return now if grew else None

    after: Samples = await eventually(published)
    text, _ = await scrape(api)

    def grew(name: str, **labels: str) -> bool:
        return total(after, name, **labels) > total(before, name, **labels)

    # RED metrics by route template: the lookup of user 123 is named by its template.
    requests = "photogram_http_requests_total"
    assert grew(requests, service="gateway", route="/api/users/{user_id}", status="404")
    assert grew(requests, service="gateway", route="/api/feed", method="GET", status="200")
    assert grew(requests, service="gateway", route="/api/auth/signup", status="201")
    assert grew(requests, service="user-service")
    assert grew("photogram_http_request_duration_seconds_count", service="gateway")
    assert 'route="/api/users/123"' not in text
    assert not any("123" in labels.get("route", "") for labels, _ in after.get(requests, [])), (
        "a raw ID in a route label"
    )

    # Every service that served a request is named.
    served = {labels["service"] for labels, _ in after[requests]}
    assert {"gateway", "user-service", "post-service", "media-service", "feed-service"} <= served

    # Peer calls, the stores, and the domain's own metrics.
    assert grew("photogram_peer_requests_total", service="gateway", peer="user-service")
    assert grew("photogram_db_query_duration_seconds_count", service="user-service")
    assert grew("photogram_redis_call_duration_seconds_count", service="feed-service")
    assert grew("photogram_outbox_published_total", service="post-service")
    assert grew("photogram_fanout_inserts_total", service="fanout-worker")
    assert grew("photogram_fanout_duration_seconds_count", service="fanout-worker")
    assert grew("photogram_delivery_latency_seconds_count", service="fanout-worker")
    assert grew("photogram_timeline_rebuilds_total", service="feed-service")
    assert grew("photogram_feed_pulled_authors_merged_count", service="feed-service")
    assert grew("photogram_upload_stage_duration_seconds_count", stage="process")
    assert "photogram_consumer_lag" in after
    assert "photogram_outbox_unsent_rows" in after
    assert "photogram_outbox_oldest_unsent_age_seconds" in after


async def test_metrics_is_not_in_the_public_api_document(api: Api) -> None:
    document: dict[str, Any] = (await api.client.get("/api/openapi.json")).json()
    assert "/metrics" not in document["paths"]
