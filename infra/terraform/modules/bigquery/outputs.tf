output "dataset_id" {
  description = "Dataset id (AEROFLOW_BIGQUERY_DATASET)."
  value       = google_bigquery_dataset.default.dataset_id
}

output "flights_latest_view" {
  description = "Fully qualified id of the flights_latest view, or null."
  value       = var.flights_latest_view ? "${var.project_id}.${google_bigquery_dataset.default.dataset_id}.flights_latest" : null
}

output "location" {
  description = "Dataset location (AEROFLOW_BIGQUERY_LOCATION)."
  value       = google_bigquery_dataset.default.location
}

output "raw_events_table" {
  description = "flight_events_raw as project.dataset.table (for a BigQuery subscription), or null."
  value = (
    var.raw_events_table
    ? "${var.project_id}.${google_bigquery_dataset.default.dataset_id}.${google_bigquery_table.raw_events[0].table_id}"
    : null
  )
}

output "tables" {
  description = "Table name => fully qualified table id (project.dataset.table)."
  value = {
    for k, t in google_bigquery_table.default : k => "${var.project_id}.${t.dataset_id}.${t.table_id}"
  }
}
