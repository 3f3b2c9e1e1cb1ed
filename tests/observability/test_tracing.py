from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from google.auth.exceptions import DefaultCredentialsError
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from aeroflow.observability.tracing import (
    configure_tracing,
    current_trace_ids,
    extract_http_context,
    extract_pubsub_context,
    ingest_span,
    inject_pubsub_attributes,
    parse_cloud_trace_context,
    parse_traceparent,
    publish_span,
    shutdown_tracing,
    span_context_of,
    storage_span,
    trace_ids_from_headers,
)
from aeroflow.settings import Settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    settings = Settings(tracing_sample_ratio=1.0)
    provider = configure_tracing(
        settings, processor=SimpleSpanProcessor(exporter), set_global=False
    )
    assert provider is not None
    yield exporter
    shutdown_tracing()


def test_traceparent_parsing() -> None:
    ids = parse_traceparent(f"00-{TRACE_ID}-{SPAN_ID}-01")
    assert ids is not None
    assert (ids.trace_id, ids.span_id, ids.sampled) == (TRACE_ID, SPAN_ID, True)
    assert parse_traceparent(f"00-{TRACE_ID}-{SPAN_ID}-00").sampled is False  # type: ignore[union-attr]
    for bad in ("", "garbage", f"00-{'0' * 32}-{SPAN_ID}-01", f"00-{TRACE_ID}-{'0' * 16}-01"):
        assert parse_traceparent(bad) is None


def test_cloud_trace_header_parsing_converts_the_decimal_span_id() -> None:
    ids = parse_cloud_trace_context(f"{TRACE_ID.upper()}/1;o=1")
    assert ids is not None
    assert (ids.trace_id, ids.span_id, ids.sampled) == (TRACE_ID, "0000000000000001", True)
    no_span = parse_cloud_trace_context(TRACE_ID)
    assert no_span is not None
    assert no_span.span_id is None
    assert not no_span.sampled
    assert parse_cloud_trace_context("nothex/12;o=1") is None


def test_traceparent_wins_over_cloud_trace_header() -> None:
    other = "a" * 32
    ids = trace_ids_from_headers(
        {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01", "x-cloud-trace-context": f"{other}/5;o=1"}
    )
    assert ids is not None
    assert ids.trace_id == TRACE_ID
    fallback = trace_ids_from_headers({"x-cloud-trace-context": f"{other}/5;o=1"})
    assert fallback is not None
    assert fallback.trace_id == other


def test_without_an_sdk_the_incoming_context_still_propagates() -> None:
    """Default settings ("none"): no spans are recorded, but the ids flow into attributes."""
    assert configure_tracing(Settings()) is None
    token = otel_context.attach(
        extract_http_context({"x-cloud-trace-context": f"{TRACE_ID}/9;o=1"})
    )
    try:
        with publish_span("flight-events", message_id="m1"):
            attributes = inject_pubsub_attributes({"source": "test"})
    finally:
        otel_context.detach(token)
    assert attributes["source"] == "test"
    assert attributes["traceparent"] == f"00-{TRACE_ID}-{9:016x}-01"
    with ingest_span(attributes, message_id="m1"):
        ids = current_trace_ids()
    assert ids is not None
    assert ids.trace_id == TRACE_ID


def test_untraced_publish_adds_no_attribute() -> None:
    assert inject_pubsub_attributes({"a": "b"}) == {"a": "b"}
    assert not span_context_of(extract_pubsub_context({"a": "b"})).is_valid


def test_one_trace_spans_publish_push_and_storage(spans: InMemorySpanExporter) -> None:
    with publish_span("flight-events", message_id="m1", ordering_key="UA1") as producer:
        attributes = inject_pubsub_attributes({})
    # The push request arrives with its own (unrelated) transport context.
    http_token = otel_context.attach(
        extract_http_context({"traceparent": f"00-{'b' * 32}-{SPAN_ID}-01"})
    )
    try:
        with ingest_span(
            attributes, message_id="m1", subscription="flight-events-push", delivery_attempt=2
        ) as consumer:
            message_context = consumer.get_span_context()
    finally:
        otel_context.detach(http_token)
    with storage_span("write_batch", backend="duckdb", links=[message_context], rows=1):
        pass

    send, process, write = spans.get_finished_spans()
    trace_id = producer.get_span_context().trace_id
    assert send.kind is SpanKind.PRODUCER
    assert send.attributes is not None
    assert send.attributes["messaging.gcp_pubsub.message.ordering_key"] == "UA1"
    assert process.kind is SpanKind.CONSUMER
    assert process.context is not None
    assert process.context.trace_id == trace_id
    assert process.parent is not None
    assert process.parent.span_id == producer.get_span_context().span_id
    assert [link.context.trace_id for link in process.links] == [int("b" * 32, 16)]
    assert process.attributes is not None
    assert process.attributes["messaging.gcp_pubsub.message.delivery_attempt"] == 2
    assert write.kind is SpanKind.CLIENT
    assert write.name == "write_batch duckdb"
    assert [link.context.span_id for link in write.links] == [message_context.span_id]


def test_a_message_without_context_stays_under_the_transport_span(
    spans: InMemorySpanExporter,
) -> None:
    token = otel_context.attach(
        extract_http_context({"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"})
    )
    try:
        with ingest_span({}, message_id="m2"):
            pass
    finally:
        otel_context.detach(token)
    [process] = spans.get_finished_spans()
    assert process.context is not None
    assert f"{process.context.trace_id:032x}" == TRACE_ID
    assert process.parent is not None
    assert f"{process.parent.span_id:016x}" == SPAN_ID
    assert not process.links


def test_the_sampler_follows_the_ratio_for_new_traces() -> None:
    exporter = InMemorySpanExporter()
    configure_tracing(
        Settings(tracing_sample_ratio=0.0),
        processor=SimpleSpanProcessor(exporter),
        set_global=False,
    )
    try:
        with publish_span("flight-events", message_id="m"):
            pass
        # A sampled remote parent is honoured whatever the ratio (ParentBased).
        token = otel_context.attach(
            extract_http_context({"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"})
        )
        try:
            with publish_span("flight-events", message_id="n"):
                pass
        finally:
            otel_context.detach(token)
    finally:
        shutdown_tracing()
    assert [s.attributes["messaging.message.id"] for s in exporter.get_finished_spans()] == ["n"]  # type: ignore[index]


def test_gcp_exporter_needs_google_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A missing key file fails at once; no metadata-server probe leaves the machine.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    with pytest.raises(DefaultCredentialsError, match=r"missing\.json"):
        configure_tracing(Settings(tracing_exporter="gcp", gcp_project="p"), set_global=False)
    shutdown_tracing()


def test_otlp_exporter_is_built_from_settings() -> None:
    provider = configure_tracing(
        Settings(tracing_exporter="otlp", tracing_otlp_endpoint="http://127.0.0.1:9/v1/traces"),
        set_global=False,
    )
    assert provider is not None
    shutdown_tracing()
