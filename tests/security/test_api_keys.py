"""API keys: hashed configuration, constant-time verification, and who may read what."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from security_support import app_for, make_keys, make_settings

from aeroflow.api.app import create_app
from aeroflow.api.auth import (
    KEY_PREFIX,
    ApiKeyConfigError,
    ApiKeyVerifier,
    credentials_from_headers,
    new_api_key,
    parse_api_keys,
)
from aeroflow.api.security import AccessConfigError, access_policy
from aeroflow.observability.metrics import API_ACCESS
from aeroflow.storage.port import FlightStore

FLIGHT = "/v1/flights?limit=1"


def assert_unauthenticated(response: httpx.Response, *, invalid: bool) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"error"}
    assert response.json()["error"]["code"] == "unauthenticated"
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer realm=")
    assert ('error="invalid_token"' in challenge) is invalid
    # The refusal is a full API response: security headers included.
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


# --- the key format and its hash ---------------------------------------------------------------


def test_new_keys_are_random_prefixed_and_hashed_with_sha256() -> None:
    made = [new_api_key("partner-a") for _ in range(50)]
    assert len({m.key for m in made}) == 50
    for m in made:
        assert m.key.startswith(KEY_PREFIX)
        assert len(m.key) == 47  # afk_ + 43 base64url characters = 256 random bits
        name, digest = m.config_line.split(":")
        assert name == "partner-a"
        assert digest == hashlib.sha256(m.key.encode()).hexdigest()
        assert m.key not in m.config_line
        assert m.entry.fingerprint == digest[:12]


def test_configuration_holds_hashes_only_and_accepts_commas_newlines_and_limits() -> None:
    (a, b, c), _ = make_keys("a", "b.team", "c_3")
    text = f"{a.config_line},\n  {b.config_line}:5/second\n{c.config_line}\n"
    entries = parse_api_keys(text)
    assert [e.name for e in entries] == ["a", "b.team", "c_3"]
    assert [e.rate_limit for e in entries] == [None, "5/second", None]
    assert parse_api_keys("") == ()
    assert parse_api_keys(" \n, ") == ()


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("justaname", "not name:sha256hex"),
        ("bad!name:" + "0" * 64, "invalid name"),
        (":" + "0" * 64, "invalid name"),
        ("a:" + "0" * 63, "64 hex digits"),
        ("a:" + "g" * 64, "64 hex digits"),
        ("a:" + "0" * 64 + ",a:" + "1" * 64, "repeated"),
        ("a:" + "0" * 64 + ",b:" + "0" * 64, "twice"),
    ],
)
def test_malformed_configuration_is_refused(text: str, complaint: str) -> None:
    with pytest.raises(ApiKeyConfigError, match=complaint):
        parse_api_keys(text)


def test_a_plaintext_key_in_the_configuration_is_refused_without_echoing_it() -> None:
    key = new_api_key("a").key
    with pytest.raises(ApiKeyConfigError) as raised:
        parse_api_keys(f"a:{key}")
    assert "looks like a key" in str(raised.value)
    assert key not in str(raised.value)


def test_verifier_finds_each_key_and_nothing_else() -> None:
    keys, config = make_keys("a", "b", "c")
    verifier = ApiKeyVerifier(parse_api_keys(config))
    for key in keys:
        found = verifier.verify(key.key)
        assert found is not None
        assert found.name == key.entry.name
    forged = [
        "",
        keys[0].key[:-1],
        keys[0].key + "x",
        keys[0].key.upper(),
        keys[0].entry.digest.hex(),  # the hash is not the key
        keys[0].config_line,
        KEY_PREFIX + "A" * 43,
        "x" * 10_000,
    ]
    for candidate in forged:
        assert verifier.verify(candidate) is None, candidate[:60]
    assert ApiKeyVerifier(()).verify(keys[0].key) is None


@pytest.mark.parametrize(
    ("headers", "key", "malformed"),
    [
        ([], None, False),
        ([(b"x-api-key", b"k1")], "k1", False),
        ([(b"authorization", b"Bearer k2")], "k2", False),
        ([(b"authorization", b"bearer   k2 ")], "k2", False),
        ([(b"authorization", b"Bearer k2"), (b"x-api-key", b"k1")], "k1", False),
        # A JWT (e.g. an ID token Cloud Run's IAM already checked) is not our key.
        ([(b"authorization", b"Bearer eyJhbGciOi.eyJzdWIi.c2ln")], None, False),
        ([(b"authorization", b"Basic dXNlcjpwYXNz")], None, True),
        ([(b"authorization", b"Bearer")], None, True),
    ],
)
def test_credentials_are_read_from_x_api_key_or_bearer(
    headers: list[tuple[bytes, bytes]], key: str | None, malformed: bool
) -> None:
    credentials = credentials_from_headers(headers)
    assert credentials.key == key
    assert credentials.malformed is malformed


# --- the app: keys required ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys_and_client(store: FlightStore) -> Any:
    keys, config = make_keys("partner-a", "partner-b")
    with TestClient(app_for(store, api_keys=config)) as client:
        yield keys, client


def test_data_endpoints_refuse_requests_without_a_key(keys_and_client: Any) -> None:
    _, client = keys_and_client
    for path in (FLIGHT, "/v1/flights/UA0100-EWR-20130101", "/v1/stats/delays?group_by=carrier"):
        assert_unauthenticated(client.get(path), invalid=False)
    # Paths under /v1 that match no route are refused too: no enumeration without a key.
    assert_unauthenticated(client.get("/v1/nothing-here"), invalid=False)
    assert_unauthenticated(client.get("/v1"), invalid=False)


@pytest.mark.parametrize("header", ["X-API-Key", "Authorization"])
def test_a_valid_key_reads(keys_and_client: Any, header: str) -> None:
    keys, client = keys_and_client
    value = keys[0].key if header == "X-API-Key" else f"Bearer {keys[0].key}"
    response = client.get(FLIGHT, headers={header: value})
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 1


@pytest.mark.parametrize(
    "forge",
    [
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),  # one character off
        lambda k: k + "=",
        lambda k: KEY_PREFIX + "x" * 43,  # right shape, never issued
        lambda k: hashlib.sha256(k.encode()).hexdigest(),  # the stored hash itself
        lambda k: "",
        lambda k: "x" * 5000,
    ],
)
def test_forged_or_wrong_keys_are_401_never_anonymous(keys_and_client: Any, forge: Any) -> None:
    keys, client = keys_and_client
    response = client.get(FLIGHT, headers={"X-API-Key": forge(keys[0].key)})
    assert_unauthenticated(response, invalid=True)
    body = response.text
    assert keys[0].key not in body


def test_cached_answers_are_not_served_without_a_key(store: FlightStore) -> None:
    (key,), config = make_keys("a")
    with TestClient(app_for(store, api_keys=config, response_cache_mib=8)) as client:
        first = client.get(FLIGHT, headers={"X-API-Key": key.key})
        assert first.status_code == 200
        again = client.get(FLIGHT, headers={"X-API-Key": key.key})
        assert again.content == first.content  # served again (from the cache, if it is on)
        assert_unauthenticated(client.get(FLIGHT), invalid=False)
        etag = first.headers.get("etag")
        if etag is not None:  # a conditional request must not confirm anything either
            assert_unauthenticated(
                client.get(FLIGHT, headers={"If-None-Match": etag}), invalid=False
            )


def test_other_authorization_schemes_are_401(keys_and_client: Any) -> None:
    _, client = keys_and_client
    response = client.get(FLIGHT, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_unauthenticated(response, invalid=False)


def test_operational_and_docs_endpoints_stay_open(keys_and_client: Any) -> None:
    _, client = keys_and_client
    for path in ("/healthz", "/readyz", "/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_metrics_need_a_key_from_outside_the_instance(keys_and_client: Any) -> None:
    keys, client = keys_and_client
    # The test client's peer is not a loopback address: it counts as "outside".
    assert_unauthenticated(client.get("/metrics"), invalid=False)
    assert client.get("/metrics", headers={"X-API-Key": keys[1].key}).status_code == 200


def test_metrics_are_open_to_loopback_without_proxy_headers(store: FlightStore) -> None:
    _, config = make_keys("a")
    app = app_for(store, api_keys=config)
    local = TestClient(app, client=("127.0.0.1", 40000))
    assert local.get("/metrics").status_code == 200
    # Through a proxy (Cloud Run's front end always adds X-Forwarded-For) it is not local,
    # whatever address the header claims.
    forwarded = local.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
    assert_unauthenticated(forwarded, invalid=False)
    assert local.get(FLIGHT).status_code == 401  # loopback gives no access to the data


def test_key_rotation_two_keys_valid_at_once_then_the_old_one_revoked(store: FlightStore) -> None:
    (old, new), both = make_keys("partner-a-2025", "partner-a-2026")
    with TestClient(app_for(store, api_keys=both)) as client:
        for key in (old, new):
            assert client.get(FLIGHT, headers={"X-API-Key": key.key}).status_code == 200
    # The next secret version drops the old entry: the old key stops working at once.
    with TestClient(app_for(store, api_keys=new.config_line)) as client:
        assert client.get(FLIGHT, headers={"X-API-Key": new.key.strip()}).status_code == 200
        assert_unauthenticated(client.get(FLIGHT, headers={"X-API-Key": old.key}), invalid=True)


def test_openapi_documents_the_key_schemes_and_the_401(keys_and_client: Any) -> None:
    _, client = keys_and_client
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "type": "apiKey", "in": "header"}
    assert schemes["ApiKey"]["name"] == "X-API-Key"
    assert schemes["BearerApiKey"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path.startswith("/v1"):
                assert operation["security"] == [{"ApiKey": []}, {"BearerApiKey": []}]
                assert {"401", "429"} <= set(operation["responses"])
            elif path != "/metrics":
                assert "security" not in operation, path


def test_access_decisions_are_counted_by_fingerprint(store: FlightStore) -> None:
    (key,), config = make_keys("counted")
    fingerprint = key.entry.fingerprint

    def count(client_label: str, outcome: str) -> float:
        return API_ACCESS.labels(client_label, outcome)._value.get()

    before = (count(fingerprint, "allowed"), count("unknown_key", "unauthenticated"))
    with TestClient(app_for(store, api_keys=config)) as client:
        client.get(FLIGHT, headers={"X-API-Key": key.key})
        client.get(FLIGHT, headers={"X-API-Key": key.key + "x"})
    assert count(fingerprint, "allowed") == before[0] + 1
    assert count("unknown_key", "unauthenticated") == before[1] + 1
    labels = {s.labels["client"] for m in API_ACCESS.collect() for s in m.samples}
    assert key.key not in labels


# --- the switches ---------------------------------------------------------------------------


def test_without_keys_the_read_api_is_open_locally(store: FlightStore) -> None:
    with TestClient(app_for(store)) as client:
        assert client.get(FLIGHT).status_code == 200
        # No keys configured: a key header means nothing and is not refused.
        assert client.get(FLIGHT, headers={"X-API-Key": "anything"}).status_code == 200


def test_public_read_with_keys_makes_keys_optional_but_still_checked(store: FlightStore) -> None:
    (key,), config = make_keys("a")
    with TestClient(app_for(store, api_keys=config, public_read=True)) as client:
        assert client.get(FLIGHT).status_code == 200
        assert client.get(FLIGHT, headers={"X-API-Key": key.key}).status_code == 200
        assert_unauthenticated(client.get(FLIGHT, headers={"X-API-Key": "wrong"}), invalid=True)
        document = client.get("/openapi.json").json()
        security = document["paths"]["/v1/flights"]["get"]["security"]
        assert {} in security  # anonymous is documented as allowed


def test_production_refuses_to_serve_the_read_api_without_keys(store: FlightStore) -> None:
    production = {"environment": "production"}
    with pytest.raises(AccessConfigError, match="AEROFLOW_PUBLIC_READ"):
        create_app(make_settings(**production), store)
    # Explicitly public, or with keys: it starts.
    create_app(make_settings(**production, public_read=True), store)
    _, config = make_keys("a")
    create_app(make_settings(**production, api_keys=config), store)
    # The ingest-only service has no read API and needs no keys.
    create_app(make_settings(**production), store, read_api=False)


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"api_auth_required": True}, "holds none"),
        ({"api_keys": "a:" + "0" * 64, "api_auth_required": True, "public_read": True}, "contra"),
        ({"api_keys": "a:not-a-hash"}, "64 hex digits"),
        ({"rate_limit_per_key": "lots"}, "invalid rate limit"),
        ({"api_keys": "a:" + "0" * 64 + ":often"}, "invalid rate limit"),
        ({"rate_limit_storage_uri": "nosuch://"}, "storage"),
        ({"rate_limit_storage_uri": "memory://"}, "async"),
    ],
)
def test_unusable_access_settings_stop_the_app_from_starting(
    overrides: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(AccessConfigError, match=complaint):
        access_policy(make_settings(**overrides))


def test_settings_never_show_the_key_hashes() -> None:
    _, config = make_keys("a")
    settings = make_settings(api_keys=config)
    assert config not in repr(settings)
    assert config not in str(settings.model_dump())
