"""Schemathesis over the OpenAPI document: every operation, stateless and stateful.

The app under test is the real one (every middleware, keys required, a DuckDB store with
flights), reached through its ASGI interface. Every response must be no 5xx and conform to
the document: status code, content type, headers and body schema; invalid input must be
refused (negative cases) and a request without the key too (``ignored_auth``).

Schemathesis' lazy pytest fixture loader does not run under pytest 9 (it reads a private node
attribute), so the cases are drawn with Hypothesis from each operation's strategy instead;
the checks are the same. Examples are bounded to keep the module under a minute on one core.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok
from schemathesis.core.transforms import Unresolvable
from schemathesis.specs.openapi.schemas import OpenApiSchema
from security_support import app_for, make_keys

from aeroflow.storage.port import FlightStore

OPERATIONS = [
    ("GET", "/v1/flights"),
    ("GET", "/v1/flights/{flight_id}"),
    ("GET", "/v1/stats/delays"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
]
EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 25}
FUZZ_SETTINGS = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)
# Schemathesis' own list of statuses that reject invalid input, plus the two this API also
# uses for that: 414 (query string over the limit) and 431 (headers over the limit).
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [
                    *("400", "401", "403", "404", "405", "406", "409", "414", "415"),
                    *("422", "428", "429", "431", "5xx"),
                ]
            }
        }
    }
)


def keep_what_a_schema_can_express(case: Any) -> None:
    """Drop the parts of a positive case that no OpenAPI schema can make valid.

    A cursor is an opaque signed token: no string drawn from its schema is one (the stateful
    test follows real ones; tests/api and the cursor properties cover forged ones). And
    departure_from must precede departure_to, a rule between two parameters that OpenAPI
    cannot state (documented in words; tests/api checks its 422).
    """
    query = case.query
    if not query:
        return
    query.pop("cursor", None)
    start, end = query.get("departure_from"), query.get("departure_to")
    if isinstance(start, str) and isinstance(end, str):
        try:
            if _instant(start, end=False) >= _instant(end, end=True):
                query.pop("departure_to")
        except (ValueError, OverflowError):
            pass  # not a time at all: the API's own 422 is right, let the check judge it


def next_page_query(step: Any) -> dict[str, Any] | None:
    """For a step following the nextPage link: every parameter the link carried, and only
    those (schemathesis may apply a subset and draw the rest, but a cursor is only valid
    with the parameters it was issued for). None for any other step or a last page."""
    transition = step.transition
    carried = {} if transition is None else transition.parameters.get("query", {})
    if "cursor" not in carried:
        return None
    values = {
        name: param.value.ok()
        for name, param in carried.items()
        if isinstance(param.value, Ok) and not isinstance(param.value.ok(), Unresolvable | None)
    }
    return values if "cursor" in values else None


def _instant(value: str, *, end: bool) -> datetime:
    if len(value) == 10:  # a bare date: its UTC midnight; as an upper bound, the next one
        day = date.fromisoformat(value) + timedelta(days=1 if end else 0)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    return datetime.fromisoformat(value.upper().replace("Z", "+00:00")).astimezone(UTC)


@pytest.fixture(scope="module")
def fuzzed(store: FlightStore) -> tuple[OpenApiSchema, dict[str, str]]:
    (key,), config = make_keys("fuzzer")
    # Limits far above what the fuzzer sends: a 429 here would only hide other answers.
    app = app_for(store, api_keys=config, rate_limit_per_key="100000/second")
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)
    return schema, {"X-API-Key": key.key}


def test_the_fuzzer_sees_every_operation(fuzzed: tuple[OpenApiSchema, dict[str, str]]) -> None:
    schema, _ = fuzzed
    found = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=lambda m: m.value)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_conforms_and_never_fails(
    fuzzed: tuple[OpenApiSchema, dict[str, str]], method: str, path: str, mode: GenerationMode
) -> None:
    schema, key_headers = fuzzed
    operation = schema[path][method]
    if mode is GenerationMode.NEGATIVE and not operation.query and not operation.path_parameters:
        pytest.skip("no parameters: nothing to make invalid (the hostile-input tests cover it)")

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES[mode])
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        if mode is GenerationMode.POSITIVE:
            keep_what_a_schema_can_express(case)
        case.call_and_validate(headers=key_headers)

    run()


@pytest.mark.slow  # about 5 s: fifteen scenarios of up to six linked calls
def test_stateful_sequences_follow_links_without_failures(
    fuzzed: tuple[OpenApiSchema, dict[str, str]],
) -> None:
    schema, key_headers = fuzzed

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def step(self, input: Any) -> Any:
            page = next_page_query(input)
            if page is None:
                keep_what_a_schema_can_express(input.case)
            else:
                input.case.query = page
            return super().step(input)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": key_headers}

    Machine.run(settings=settings(FUZZ_SETTINGS, max_examples=15, stateful_step_count=6))
