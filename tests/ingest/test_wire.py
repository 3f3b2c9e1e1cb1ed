from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from ingest_helpers import arrived_event, scheduled_event

from aeroflow.domain.events import FlightEvent, FlightStatus
from aeroflow.domain.schema import pubsub_avro_schema
from aeroflow.ingest.publisher import event_message
from aeroflow.ingest.wire import FIELDS, UNION_BRANCH, encode_event, unwrap_unions

REPO = Path(__file__).resolve().parents[2]
AVRO_SCHEMA_FILE = REPO / "infra/terraform/schemas/pubsub/flight_event.avsc"


def test_wire_fields_are_the_event_fields() -> None:
    assert set(FIELDS) == set(FlightEvent.model_fields)
    assert set(UNION_BRANCH) == {
        "actual_departure",
        "actual_arrival",
        "tail_number",
        "air_time_minutes",
    }


def test_optional_values_are_wrapped_in_their_avro_branch_and_nulls_written() -> None:
    arrived = orjson.loads(encode_event(arrived_event()))
    assert arrived["tail_number"] == {"string": "N14228"}
    assert arrived["air_time_minutes"] == {"long": 227}
    assert arrived["actual_departure"] == {"string": "2013-01-01T05:17:00-05:00"}
    assert arrived["scheduled_arrival"] == "2013-01-01T08:19:00-06:00"
    assert arrived["flight_number"] == 1545
    assert arrived["status"] == "arrived"

    scheduled = orjson.loads(encode_event(scheduled_event()))
    assert set(scheduled) == set(FIELDS)  # nulls are present, as Avro's JSON encoding wants
    assert scheduled["tail_number"] is None
    assert scheduled["actual_departure"] is None


def test_unwrap_only_touches_the_expected_branch() -> None:
    body = {"tail_number": {"string": "N1"}, "air_time_minutes": {"string": "12"}, "x": 1}
    assert unwrap_unions(body)
    assert body == {"tail_number": "N1", "air_time_minutes": {"string": "12"}, "x": 1}
    assert not unwrap_unions({"tail_number": "N1"})


# --- against Google's Pub/Sub emulator ---------------------------------------------------


def _emulator_launcher() -> Path | None:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    root = subprocess.run(
        [gcloud, "info", "--format=value(installation.sdk_root)"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    ).stdout.strip()
    launcher = Path(root) / "platform/pubsub-emulator/bin/cloud-pubsub-emulator"
    return launcher if root and launcher.exists() else None


@pytest.fixture(scope="module")
def emulator_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    launcher = _emulator_launcher()
    if launcher is None:
        pytest.skip("Pub/Sub emulator (google-cloud-cli-pubsub-emulator) is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path_factory.mktemp("emulator") / "emulator.log").open("wb")
    process = subprocess.Popen(
        [str(launcher), "--host=127.0.0.1", f"--port={port}"], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the Pub/Sub emulator did not start")
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


@pytest.mark.emulator
@pytest.mark.slow
def test_event_messages_pass_the_topic_schema_and_plain_json_does_not(
    emulator_host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator_host)
    from google.api_core.exceptions import InvalidArgument
    from google.cloud import pubsub_v1
    from google.pubsub_v1.types import Encoding, Schema

    # The committed file is what Terraform gives the topic; it must be the generated schema.
    definition = AVRO_SCHEMA_FILE.read_text()
    assert orjson.loads(definition) == pubsub_avro_schema()

    client = pubsub_v1.SchemaServiceClient()
    project = "projects/aeroflow-test"
    schema = Schema(type_=Schema.Type.AVRO, definition=definition)

    def validate(data: bytes) -> None:
        client.validate_message(
            request={
                "parent": project,
                "schema": schema,
                "message": data,
                "encoding": Encoding.JSON,
            }
        )

    events = [
        scheduled_event(),
        arrived_event(),
        arrived_event(status=FlightStatus.DEPARTED, actual_arrival=None, air_time_minutes=None),
        scheduled_event(status=FlightStatus.CANCELLED, tail_number="N14228",
                        event_time=arrived_event().scheduled_departure),
    ]  # fmt: skip
    for event in events:
        validate(event_message(event).data)

    # Why the wrapping exists: the topic refuses FlightEvent's own JSON once a value is set.
    with pytest.raises(InvalidArgument):
        validate(arrived_event().model_dump_json().encode())
