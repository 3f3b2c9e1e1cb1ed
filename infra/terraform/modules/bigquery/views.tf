# Current state without maintenance: dedupe redeliveries by message_id, then keep the latest
# event per flight (event_time, ties broken by publish_time). Scans flight_events, so the
# flights table stays the fast path; this view is the zero-maintenance alternative.
resource "google_bigquery_table" "flights_latest" {
  count               = var.flights_latest_view ? 1 : 0
  project             = var.project_id
  dataset_id          = google_bigquery_dataset.default.dataset_id
  table_id            = "flights_latest"
  description         = "Latest event per flight, derived from flight_events."
  labels              = var.labels
  deletion_protection = var.deletion_protection

  view {
    use_legacy_sql = false
    query          = <<-SQL
      SELECT * EXCEPT (_flight_rank)
      FROM (
        SELECT
          events.*,
          ROW_NUMBER() OVER (
            PARTITION BY flight_id ORDER BY event_time DESC, publish_time DESC
          ) AS _flight_rank
        FROM (
          SELECT * EXCEPT (_message_rank)
          FROM (
            SELECT
              *,
              ROW_NUMBER() OVER (PARTITION BY message_id ORDER BY ingest_time) AS _message_rank
            FROM `${var.project_id}.${google_bigquery_dataset.default.dataset_id}.flight_events`
          )
          WHERE _message_rank = 1
        ) AS events
      )
      WHERE _flight_rank = 1
    SQL
  }

  depends_on = [google_bigquery_table.default]
}
