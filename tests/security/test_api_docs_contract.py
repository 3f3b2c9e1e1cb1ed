"""docs/api.md says what a client gets for keys, limits and refusals: check it against what the
server answers over real HTTP, and against what ``aeroflow keys new`` prints."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from security_support import app_for, make_keys
from typer.testing import CliRunner

from aeroflow.api.auth import key_digest
from aeroflow.api.middleware.header_limit import MAX_HEADER_BYTES
from aeroflow.cli import app as cli
from aeroflow.storage.port import FlightStore
from loopback_server import serve

API_DOC = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()


def documented(status: int, code: str) -> bool:
    """A row of one of the doc's tables that pairs this status with this error code."""
    return re.search(rf"^\| {status} \| `{code}` \|", API_DOC, re.MULTILINE) is not None


def test_every_refusal_a_client_can_meet_is_documented_as_it_is_answered(
    store: FlightStore,
) -> None:
    (key,), config = make_keys("partner-a")
    app = app_for(store, api_keys=config, rate_limit_per_key="2/minute")
    seen: dict[int, httpx.Response] = {}
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        seen[401] = http.get("/v1/flights")
        assert http.get("/v1/flights", headers={"X-API-Key": "afk_wrong"}).status_code == 401
        assert http.get("/v1/flights", headers={"Authorization": "Basic eA=="}).status_code == 401
        with_key = {"X-API-Key": key.key}
        assert http.get("/v1/flights", headers=with_key).status_code == 200
        assert http.get("/v1/flights", headers=with_key).status_code == 200
        seen[429] = http.get("/v1/flights", headers=with_key)
        seen[414] = http.get("/v1/flights?x=" + "a" * 5000)
        seen[431] = http.get("/v1/flights", headers={"X-Big": "a" * (MAX_HEADER_BYTES + 1)})
    for status, response in seen.items():
        assert response.status_code == status, response.text
        code = response.json()["error"]["code"]
        assert documented(status, code), f"docs/api.md has no row for {status} `{code}`"
    assert seen[401].headers["www-authenticate"] == 'Bearer realm="aeroflow"'
    retry_after = seen[429].headers["retry-after"]
    assert retry_after.isdigit()
    assert int(retry_after) >= 1
    assert seen[429].json()["error"]["details"] == [{"limit": "2 per 1 minute"}]
    # What the doc promises about those headers and the key's format.
    for promise in ("WWW-Authenticate: Bearer realm=", "Retry-After", "X-API-Key", "Bearer afk_"):
        assert promise in API_DOC


def test_keys_new_prints_what_the_doc_shows() -> None:
    result = CliRunner().invoke(cli, ["keys", "new", "partner-a"])
    assert result.exit_code == 0, result.output
    printed = dict(
        line.split(":", 1) for line in result.stdout.splitlines() if re.match(r"^\w+:\s", line)
    )
    key, entry, fingerprint = (printed[name].strip() for name in ("key", "entry", "fingerprint"))
    assert re.fullmatch(r"afk_[A-Za-z0-9_-]{43}", key)
    assert entry == f"partner-a:{key_digest(key).hex()}"
    assert fingerprint == key_digest(key).hex()[:12]
    assert "$ aeroflow keys new partner-a" in API_DOC
    for label in ("key:", "entry:", "fingerprint:"):
        assert re.search(rf"^{label}\s", API_DOC, re.MULTILINE), label
