"""Rate limits: per API key, per client address for everyone else; 429 with Retry-After."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from security_support import app_for, make_keys

from aeroflow.api.ratelimit import (
    UNKNOWN_CLIENT,
    RateLimiter,
    client_address,
    parse_rate_limits,
)
from aeroflow.storage.port import FlightStore

FLIGHT = "/v1/flights?limit=1"


def assert_rate_limited(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["details"]
    assert "per" in error["details"][0]["limit"]
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert response.headers["x-content-type-options"] == "nosniff"
    return retry_after


def test_a_key_over_its_limit_gets_429_and_other_keys_do_not(store: FlightStore) -> None:
    (a, b), config = make_keys("a", "b")
    app = app_for(store, api_keys=config, rate_limit_per_key="3/minute")
    with TestClient(app) as client:
        for _ in range(3):
            assert client.get(FLIGHT, headers={"X-API-Key": a.key}).status_code == 200
        assert_rate_limited(client.get(FLIGHT, headers={"X-API-Key": a.key}))
        # The same key as a bearer token is the same client.
        assert_rate_limited(client.get(FLIGHT, headers={"Authorization": f"Bearer {a.key}"}))
        assert client.get(FLIGHT, headers={"X-API-Key": b.key}).status_code == 200


def test_an_entry_can_carry_its_own_limit(store: FlightStore) -> None:
    (small, big), _ = make_keys("small", "big")
    config = f"{small.config_line}:1/minute,{big.config_line}"
    app = app_for(store, api_keys=config, rate_limit_per_key="5/minute")
    with TestClient(app) as client:
        assert client.get(FLIGHT, headers={"X-API-Key": small.key}).status_code == 200
        assert_rate_limited(client.get(FLIGHT, headers={"X-API-Key": small.key}))
        for _ in range(5):
            assert client.get(FLIGHT, headers={"X-API-Key": big.key}).status_code == 200
        assert_rate_limited(client.get(FLIGHT, headers={"X-API-Key": big.key}))


def test_retry_after_is_honest(store: FlightStore) -> None:
    (key,), config = make_keys("a")
    app = app_for(store, api_keys=config, rate_limit_per_key="2/second")
    with TestClient(app) as client:
        headers = {"X-API-Key": key.key}
        while client.get(FLIGHT, headers=headers).status_code == 200:
            pass
        retry_after = assert_rate_limited(client.get(FLIGHT, headers=headers))
        time.sleep(retry_after)
        assert client.get(FLIGHT, headers=headers).status_code == 200


def test_anonymous_clients_are_limited_per_address(store: FlightStore) -> None:
    app = app_for(store, rate_limit_per_ip="2/minute", client_ip_proxy_hops=1)
    with TestClient(app) as client:

        def get(forwarded_for: str) -> int:
            return client.get(FLIGHT, headers={"X-Forwarded-For": forwarded_for}).status_code

        assert [get("198.51.100.7"), get("198.51.100.7")] == [200, 200]
        assert_rate_limited(client.get(FLIGHT, headers={"X-Forwarded-For": "198.51.100.7"}))
        # Whatever the client writes left of what our proxy appended does not help it.
        spoofed = "203.0.113.1, 198.51.100.7"
        assert_rate_limited(client.get(FLIGHT, headers={"X-Forwarded-For": spoofed}))
        # Another address has its own budget; non-API paths are not limited.
        assert get("198.51.100.8") == 200
        for _ in range(5):
            assert client.get("/healthz", headers={"X-Forwarded-For": "198.51.100.7"}).is_success


def test_failed_key_attempts_count_against_the_address(store: FlightStore) -> None:
    (key,), config = make_keys("a")
    app = app_for(store, api_keys=config, rate_limit_per_ip="3/minute")
    with TestClient(app) as client:
        statuses = [
            client.get(FLIGHT, headers={"X-API-Key": f"guess-{i}"}).status_code for i in range(5)
        ]
        assert statuses == [401, 401, 401, 429, 429]
        # A valid key is counted per key, not per address: it still reads.
        assert client.get(FLIGHT, headers={"X-API-Key": key.key}).status_code == 200


def test_openapi_documents_the_429(store: FlightStore) -> None:
    app = app_for(store, rate_limit_per_ip="7/second")
    with TestClient(app) as client:
        operation = client.get("/openapi.json").json()["paths"]["/v1/flights"]["get"]
    assert "7 per 1 second" in operation["responses"]["429"]["description"]
    assert "Retry-After" in operation["responses"]["429"]["headers"]


@pytest.mark.parametrize(
    ("forwarded", "hops", "peer", "expected"),
    [
        ([], 1, "10.0.0.9", "10.0.0.9"),
        ([b"198.51.100.7"], 1, "10.0.0.9", "198.51.100.7"),
        ([b"1.1.1.1, 198.51.100.7"], 1, "10.0.0.9", "198.51.100.7"),
        ([b"1.1.1.1, 198.51.100.7, 35.1.2.3"], 2, "10.0.0.9", "198.51.100.7"),
        ([b"1.1.1.1", b"198.51.100.7"], 1, "10.0.0.9", "198.51.100.7"),  # two header lines
        ([b"198.51.100.7"], 2, "10.0.0.9", "198.51.100.7"),  # shorter chain than configured
        ([b"198.51.100.7"], 0, "10.0.0.9", "10.0.0.9"),  # hops 0: the peer counts
        ([b"198.51.100.7:4711"], 1, "10.0.0.9", "198.51.100.7"),
        ([b"2001:db8:1:2:3:4:5:6"], 1, "10.0.0.9", "2001:db8:1:2::/64"),
        ([b"[2001:db8:1:2::9]:443"], 1, "10.0.0.9", "2001:db8:1:2::/64"),
        ([b"::ffff:198.51.100.7"], 1, "10.0.0.9", "198.51.100.7"),
        ([b"not-an-address"], 1, "10.0.0.9", UNKNOWN_CLIENT),
        ([b" , "], 1, "10.0.0.9", "10.0.0.9"),
    ],
)
def test_client_address(forwarded: list[bytes], hops: int, peer: str, expected: str) -> None:
    assert client_address((peer, 1234), forwarded, hops) == expected


def test_ipv6_clients_share_a_budget_per_64() -> None:
    first = client_address(None, [b"2001:db8:aa:bb:1::1"], 1)
    same_64 = client_address(None, [b"2001:db8:aa:bb:ffff::2"], 1)
    other_64 = client_address(None, [b"2001:db8:aa:bc::1"], 1)
    assert first == same_64 != other_64


def test_limiter_memory_per_client_is_constant() -> None:
    # Sliding-window counters: two counters per client and limit, however many requests.
    async def run() -> int:
        limiter = RateLimiter()
        limits = parse_rate_limits("1000/minute")
        for _ in range(500):
            await limiter.hit(limits, "ip", "198.51.100.7")
        storage = limiter._limiter.storage
        return len(storage.storage) + len(storage.events)  # type: ignore[attr-defined]

    assert asyncio.run(run()) <= 2


@pytest.mark.parametrize("text", ["", "  ", None])
def test_empty_limit_means_no_limit(text: str | None) -> None:
    assert parse_rate_limits(text) == ()
