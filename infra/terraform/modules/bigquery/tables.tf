resource "google_bigquery_table" "default" {
  for_each            = local._tables
  project             = var.project_id
  dataset_id          = google_bigquery_dataset.default.dataset_id
  table_id            = each.key
  description         = each.value.description
  labels              = var.labels
  deletion_protection = var.deletion_protection
  schema              = file("${local._schema_dir}/${each.key}.json")
  clustering          = length(each.value.clustering) > 0 ? each.value.clustering : null

  time_partitioning {
    type          = "DAY"
    field         = each.value.partition_field
    expiration_ms = each.value.expiration_days == null ? null : each.value.expiration_days * 86400000
  }
}

# The zero-code alternative for raw events: a Pub/Sub BigQuery subscription writes here with
# write_metadata on and no topic schema, so the columns are Pub/Sub's fixed layout, not the
# domain's (data holds the message body as JSON text).
resource "google_bigquery_table" "raw_events" {
  count               = var.raw_events_table ? 1 : 0
  project             = var.project_id
  dataset_id          = google_bigquery_dataset.default.dataset_id
  table_id            = "flight_events_raw"
  description         = "Raw messages written by the Pub/Sub BigQuery subscription (at-least-once: dedupe on message_id)."
  labels              = var.labels
  deletion_protection = var.deletion_protection
  schema = jsonencode([
    { name = "subscription_name", type = "STRING", mode = "NULLABLE", description = "Subscription that wrote the row." },
    { name = "message_id", type = "STRING", mode = "NULLABLE", description = "Pub/Sub message id." },
    { name = "publish_time", type = "TIMESTAMP", mode = "NULLABLE", description = "When Pub/Sub accepted the message." },
    { name = "data", type = "STRING", mode = "NULLABLE", description = "Message body (JSON FlightEvent)." },
    { name = "attributes", type = "STRING", mode = "NULLABLE", description = "Message attributes as JSON text." },
  ])

  time_partitioning {
    type  = "DAY"
    field = "publish_time"
  }
}
