locals {
  # The generated schema files: written by `aeroflow schema export` from
  # src/aeroflow/domain/schema.py, never edited by hand.
  _schema_dir = "${path.module}/../../schemas/bigquery"
  # Partitioning and clustering mirror Table.partition_by / Table.cluster_by in the domain
  # schema (tests/infra checks they agree).
  _tables = {
    flight_events = {
      description     = "Every accepted flight event, append-only, one row per Pub/Sub message id."
      partition_field = "scheduled_departure"
      clustering      = ["carrier", "origin", "destination"]
      expiration_days = null
    }
    flights = {
      description     = "Current state: the latest event per flight, maintained by the ingest service with MERGE."
      partition_field = "scheduled_departure"
      clustering      = ["carrier", "origin", "destination"]
      expiration_days = null
    }
    rejected_messages = {
      description     = "Poison messages, acked so they never block the stream, kept with the reason."
      partition_field = "received_at"
      clustering      = []
      expiration_days = var.rejected_messages_retention_days
    }
  }
}

resource "google_bigquery_dataset" "default" {
  project       = var.project_id
  dataset_id    = var.dataset_id
  friendly_name = "aeroflow"
  description   = "aeroflow flight status events and current flight state."
  location      = var.location
  labels        = var.labels
  # No default_table_expiration_ms: tables never expire unless a table says so.
  delete_contents_on_destroy = false
}
