"""OpenTelemetry tracing with W3C trace context carried publish -> push -> storage.

The context travels in two places: HTTP headers (``traceparent``, or Cloud Run's
``X-Cloud-Trace-Context`` when no ``traceparent`` came) and Pub/Sub message attributes
(``traceparent``/``tracestate``, set at publish, read at ingest). One trace therefore spans the
publisher, the push delivery and the batch write.

With ``tracing_exporter="none"`` (the default) no SDK is installed: the API's no-op tracer still
propagates the incoming context, so logs carry the caller's trace id at almost no cost. "otlp"
(any collector) and "gcp" (Cloud Trace's OTLP endpoint, with the workload's credentials)
install an SDK ``TracerProvider`` with a parent-based ratio sampler and a batch exporter; call
:func:`shutdown_tracing` on exit so queued spans are flushed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from aeroflow import __version__
from aeroflow.settings import Settings

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
CLOUD_TRACE_HEADER = "x-cloud-trace-context"

# W3C is the one format we emit; X-Cloud-Trace-Context is only read (Cloud Run's front end and
# older Google clients send it).
_W3C = TraceContextTextMapPropagator()
_INSTRUMENTATION = "aeroflow"
_CLOUD_TRACE_RE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d{1,20}))?(?:;o=([01]))?$")
_TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
CLOUD_TRACE_OTLP_ENDPOINT = "https://telemetry.googleapis.com/v1/traces"
_CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# The SDK caps links per span at 128; a batch keeps its first messages' contexts.
MAX_BATCH_LINKS = 64

_provider: TracerProvider | None = None


@dataclass(frozen=True, slots=True)
class TraceIds:
    """Trace ids as Cloud Logging wants them: 32 and 16 lowercase hex digits."""

    trace_id: str
    span_id: str | None
    sampled: bool


def parse_traceparent(value: str | None) -> TraceIds | None:
    """Parse a W3C ``traceparent`` header; None when absent or malformed (all-zero ids too)."""
    if not value:
        return None
    match = _TRACEPARENT_RE.match(value.strip())
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return TraceIds(trace_id, span_id, sampled=bool(int(flags, 16) & 0x01))


def parse_cloud_trace_context(value: str | None) -> TraceIds | None:
    """Parse ``X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1`` (the span id is decimal)."""
    if not value:
        return None
    match = _CLOUD_TRACE_RE.match(value.strip())
    if match is None:
        return None
    trace_hex, span_dec, option = match.groups()
    if int(trace_hex, 16) == 0:
        return None
    span_id: str | None = None
    if span_dec is not None:
        span_int = int(span_dec)
        if 0 < span_int < 2**64:
            span_id = f"{span_int:016x}"
    return TraceIds(trace_hex.lower(), span_id, sampled=option == "1")


def trace_ids_from_headers(headers: Mapping[str, str]) -> TraceIds | None:
    """The caller's trace ids: ``traceparent`` first, then ``X-Cloud-Trace-Context``."""
    return parse_traceparent(headers.get(TRACEPARENT)) or parse_cloud_trace_context(
        headers.get(CLOUD_TRACE_HEADER)
    )


def current_trace_ids() -> TraceIds | None:
    """Ids of the span active in this context (a remote parent counts), or None."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return TraceIds(
        trace_id=f"{span_context.trace_id:032x}",
        span_id=f"{span_context.span_id:016x}",
        sampled=span_context.trace_flags.sampled,
    )


def extract_http_context(headers: Mapping[str, str]) -> otel_context.Context:
    """Parent context from request headers (lower-case names), or an empty context."""
    if headers.get(TRACEPARENT):
        extracted = _W3C.extract(carrier=dict(headers))
        if trace.get_current_span(extracted).get_span_context().is_valid:
            return extracted
    ids = parse_cloud_trace_context(headers.get(CLOUD_TRACE_HEADER))
    if ids is None or ids.span_id is None:
        return otel_context.Context()
    remote = SpanContext(
        trace_id=int(ids.trace_id, 16),
        span_id=int(ids.span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if ids.sampled else TraceFlags.DEFAULT),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(remote))


def inject_pubsub_attributes(
    attributes: Mapping[str, str], context: otel_context.Context | None = None
) -> dict[str, str]:
    """A copy of ``attributes`` plus ``traceparent`` (and ``tracestate``) of the active span.

    Unchanged when no valid span is active, so untraced publishes add nothing.
    """
    carrier: dict[str, str] = dict(attributes)
    _W3C.inject(carrier, context=context)
    return carrier


def extract_pubsub_context(attributes: Mapping[str, str]) -> otel_context.Context:
    """Parent context carried by a message's attributes (empty when it carries none)."""
    if TRACEPARENT not in attributes:
        return otel_context.Context()
    carrier: MutableMapping[str, str] = {
        key: attributes[key] for key in (TRACEPARENT, TRACESTATE) if key in attributes
    }
    return _W3C.extract(carrier=carrier)


def span_context_of(context: otel_context.Context) -> SpanContext:
    """The span context held in ``context`` (invalid when there is none)."""
    return trace.get_current_span(context).get_span_context()


def get_tracer() -> trace.Tracer:
    # Our provider first: the global one can be set only once per process.
    if _provider is not None:
        return _provider.get_tracer(_INSTRUMENTATION, __version__)
    return trace.get_tracer(_INSTRUMENTATION, __version__)


@contextmanager
def publish_span(topic: str, *, message_id: str, ordering_key: str = "") -> Iterator[Span]:
    """PRODUCER span around one publish; inject inside it so the message carries its id."""
    attributes = {
        "messaging.system": "gcp_pubsub",
        "messaging.operation.type": "send",
        "messaging.destination.name": topic,
        "messaging.message.id": message_id,
    }
    if ordering_key:
        attributes["messaging.gcp_pubsub.message.ordering_key"] = ordering_key
    with get_tracer().start_as_current_span(
        f"send {topic}", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        yield span


@contextmanager
def ingest_span(
    message_attributes: Mapping[str, str],
    *,
    message_id: str,
    subscription: str = "",
    delivery_attempt: int | None = None,
) -> Iterator[Span]:
    """CONSUMER span for one delivered message, child of the publisher's span.

    The message's own context is the parent so that publish and ingest share one trace; the
    transport span active here (the HTTP push request) is kept as a link.
    """
    parent = extract_pubsub_context(message_attributes)
    links: list[Link] = []
    transport = trace.get_current_span().get_span_context()
    if not span_context_of(parent).is_valid:
        # No context in the message: stay under the transport span rather than start a root.
        parent = otel_context.get_current()
    elif transport.is_valid:
        links.append(Link(transport))
    attributes: dict[str, str | int] = {
        "messaging.system": "gcp_pubsub",
        "messaging.operation.type": "process",
        "messaging.message.id": message_id,
    }
    if subscription:
        attributes["messaging.destination.subscription.name"] = subscription
    if delivery_attempt is not None:
        attributes["messaging.gcp_pubsub.message.delivery_attempt"] = delivery_attempt
    with get_tracer().start_as_current_span(
        f"process {subscription or 'message'}",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=links,
        attributes=attributes,
    ) as span:
        yield span


@contextmanager
def storage_span(
    operation: str,
    *,
    backend: str,
    links: Sequence[SpanContext] = (),
    rows: int | None = None,
) -> Iterator[Span]:
    """CLIENT span around one storage call; a batch write links the messages it carries."""
    attributes: dict[str, str | int] = {"db.system.name": backend, "db.operation.name": operation}
    if rows is not None:
        attributes["aeroflow.batch.messages"] = rows
    span_links = [Link(ctx) for ctx in links[:MAX_BATCH_LINKS] if ctx.is_valid]
    with get_tracer().start_as_current_span(
        f"{operation} {backend}", kind=SpanKind.CLIENT, links=span_links, attributes=attributes
    ) as span:
        yield span


def _exporter(settings: Settings) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if settings.tracing_exporter == "otlp":
        return OTLPSpanExporter(endpoint=settings.tracing_otlp_endpoint)
    # "gcp": Cloud Trace's own OTLP endpoint (the Telemetry API). Google deprecated the
    # CloudTraceSpanExporter in its favour; the session adds the workload's OAuth token.
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=[_CLOUD_PLATFORM_SCOPE])
    session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
    return OTLPSpanExporter(endpoint=CLOUD_TRACE_OTLP_ENDPOINT, session=session)


def configure_tracing(
    settings: Settings, *, processor: SpanProcessor | None = None, set_global: bool = True
) -> TracerProvider | None:
    """Install the tracer provider chosen by settings; None when tracing is off.

    ``processor`` replaces the exporter chosen by settings (tests pass an in-memory one, with
    ``set_global=False`` because OpenTelemetry's global provider can be set once only).
    Call once, at the composition root, before the app serves.
    """
    global _provider
    if settings.tracing_exporter == "none" and processor is None:
        return None
    attributes = {"service.name": settings.tracing_service_name, "service.version": __version__}
    if settings.gcp_project:
        # The Telemetry API files spans under the project named by this resource attribute.
        attributes["gcp.project_id"] = settings.gcp_project
    resource = Resource.create(attributes)
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio))
    )
    provider.add_span_processor(processor or BatchSpanProcessor(_exporter(settings)))
    if set_global:
        trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def shutdown_tracing() -> None:
    """Flush and stop the provider installed by :func:`configure_tracing` (no-op otherwise)."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None
