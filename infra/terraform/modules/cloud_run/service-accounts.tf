# One identity per workload: a leaked token of one service grants nothing the others hold.

resource "google_service_account" "api" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-api"
  display_name = "aeroflow read API (Cloud Run)"
  description  = "Runs ${var.name_prefix}-api: reads BigQuery, reads the API keys and cursor secrets."
}

resource "google_service_account" "ingest" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-ingest"
  display_name = "aeroflow push ingest (Cloud Run)"
  description  = "Runs ${var.name_prefix}-ingest: writes BigQuery."
}

# The identity Pub/Sub signs push requests with; the only invoker of the ingest service.
resource "google_service_account" "push" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-push"
  display_name = "aeroflow Pub/Sub push identity"
  description  = "OIDC identity of the push subscription; may only invoke ${var.name_prefix}-ingest."
}

resource "google_service_account" "worker" {
  count        = var.worker_service_account ? 1 : 0
  project      = var.project_id
  account_id   = "${var.name_prefix}-worker"
  display_name = "aeroflow streaming-pull worker"
  description  = "Runs aeroflow worker: pulls the worker subscription, writes BigQuery."
}
