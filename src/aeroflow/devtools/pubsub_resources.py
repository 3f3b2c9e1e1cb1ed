"""Create the Pub/Sub resources of ``infra/terraform/modules/pubsub`` with the official clients.

For the emulator demo and local experiments. In Google Cloud, Terraform owns these resources;
this module mirrors what the module declares, so the local flow exercises the same shape:

* schema ``flight-events`` (Avro, from ``infra/terraform/schemas/pubsub/flight_event.avsc``) and
  topic ``flight-events`` validating every message against it (JSON encoding), keeping
  messages for ``message_retention`` so subscriptions can seek back;
* dead-letter topic ``flight-events-dead-letter`` and its subscription of the same name, which
  retains acked messages (a topic without a subscription drops what it receives);
* push subscription ``flight-events-ingest-push`` to the ingest endpoint, with the retry policy
  (exponential backoff between redeliveries) and the dead-letter policy; with ``oidc`` the push
  requests carry a Google-signed token, as Terraform configures it. Nothing expires when idle.

The clients find the emulator through ``PUBSUB_EMULATOR_HOST``, and Google Cloud otherwise: no
emulator-specific code here. Existing resources are kept as they are (``AlreadyExists``), as
``bigquery_setup`` keeps existing tables.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from google.api_core.exceptions import AlreadyExists
from google.cloud import pubsub_v1
from google.pubsub_v1.types import Encoding, Schema

log = logging.getLogger(__name__)

REPO_ROOT: Final = Path(__file__).resolve().parents[3]
TOPIC_SCHEMA_FILE: Final = (
    REPO_ROOT / "infra" / "terraform" / "schemas" / "pubsub" / "flight_event.avsc"
)
SEVEN_DAYS_SECONDS: Final = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class PushIdentity:
    """The ``oidc_token`` block of a push subscription."""

    service_account_email: str
    audience: str


@dataclass(frozen=True, slots=True)
class PushDelivery:
    """How the push subscription delivers; defaults as in the Terraform module, except the
    dead-letter attempts (Terraform: 10; Pub/Sub accepts 5-100)."""

    endpoint: str
    oidc: PushIdentity | None = None
    ack_deadline_seconds: int = 60
    minimum_backoff_seconds: int = 10
    maximum_backoff_seconds: int = 600
    max_delivery_attempts: int = 5
    message_retention_seconds: int = SEVEN_DAYS_SECONDS


@dataclass(frozen=True, slots=True)
class FlightEventTopics:
    """Full resource names (``projects/P/...``) of what ``create_flight_event_topics`` made."""

    schema: str
    topic: str
    dead_letter_topic: str
    dead_letter_subscription: str
    push_subscription: str


def create_flight_event_topics(
    project: str,
    push: PushDelivery,
    *,
    topic_name: str = "flight-events",
    schema_definition: str | None = None,
    publisher: pubsub_v1.PublisherClient | None = None,
    subscriber: pubsub_v1.SubscriberClient | None = None,
    schemas: pubsub_v1.SchemaServiceClient | None = None,
) -> FlightEventTopics:
    """Schema, topic, dead-letter topic and subscription, push subscription (in that order:
    each refers to the ones before). Clients are made (and closed) here unless given."""
    names = FlightEventTopics(
        schema=f"projects/{project}/schemas/{topic_name}",
        topic=f"projects/{project}/topics/{topic_name}",
        dead_letter_topic=f"projects/{project}/topics/{topic_name}-dead-letter",
        dead_letter_subscription=f"projects/{project}/subscriptions/{topic_name}-dead-letter",
        push_subscription=f"projects/{project}/subscriptions/{topic_name}-ingest-push",
    )
    definition = schema_definition or TOPIC_SCHEMA_FILE.read_text()
    own_publisher, own_subscriber, own_schemas = (
        publisher is None,
        subscriber is None,
        schemas is None,
    )
    publisher = publisher or pubsub_v1.PublisherClient()
    subscriber = subscriber or pubsub_v1.SubscriberClient()
    schemas = schemas or pubsub_v1.SchemaServiceClient()
    try:
        _create(
            "schema",
            names.schema,
            lambda: schemas.create_schema(
                request={
                    "parent": f"projects/{project}",
                    "schema": Schema(type_=Schema.Type.AVRO, definition=definition),
                    "schema_id": topic_name,
                }
            ),
        )
        retention = {"seconds": push.message_retention_seconds}
        _create(
            "topic",
            names.topic,
            lambda: publisher.create_topic(
                request={
                    "name": names.topic,
                    "schema_settings": {"schema": names.schema, "encoding": Encoding.JSON},
                    "message_retention_duration": retention,
                }
            ),
        )
        _create(
            "topic",
            names.dead_letter_topic,
            lambda: publisher.create_topic(
                request={"name": names.dead_letter_topic, "message_retention_duration": retention}
            ),
        )
        _create(
            "subscription",
            names.dead_letter_subscription,
            lambda: subscriber.create_subscription(
                request={
                    "name": names.dead_letter_subscription,
                    "topic": names.dead_letter_topic,
                    "ack_deadline_seconds": 60,
                    "message_retention_duration": retention,
                    "retain_acked_messages": True,
                    "expiration_policy": {},  # no ttl: never expires
                }
            ),
        )
        _create(
            "subscription",
            names.push_subscription,
            lambda: subscriber.create_subscription(
                request=_push_subscription(names, push, retention)
            ),
        )
    finally:
        if own_publisher:
            publisher.stop()
        if own_subscriber:
            subscriber.close()
        if own_schemas:
            schemas.transport.close()
    return names


def _push_subscription(
    names: FlightEventTopics, push: PushDelivery, retention: dict[str, int]
) -> dict[str, Any]:
    push_config: dict[str, Any] = {"push_endpoint": push.endpoint}
    if push.oidc is not None:
        push_config["oidc_token"] = {
            "service_account_email": push.oidc.service_account_email,
            "audience": push.oidc.audience,
        }
    return {
        "name": names.push_subscription,
        "topic": names.topic,
        "push_config": push_config,
        "ack_deadline_seconds": push.ack_deadline_seconds,
        "message_retention_duration": retention,
        "retry_policy": {
            "minimum_backoff": {"seconds": push.minimum_backoff_seconds},
            "maximum_backoff": {"seconds": push.maximum_backoff_seconds},
        },
        "dead_letter_policy": {
            "dead_letter_topic": names.dead_letter_topic,
            "max_delivery_attempts": push.max_delivery_attempts,
        },
        "expiration_policy": {},
    }


def _create(kind: str, name: str, create: Callable[[], object]) -> None:
    try:
        create()
    except AlreadyExists:
        log.info("%s %s exists; kept as it is", kind, name)
