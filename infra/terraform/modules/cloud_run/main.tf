locals {
  # Cloud Run only checks that the OIDC token's audience is the service URL or one of its
  # custom audiences. A fixed custom audience lets Pub/Sub and the app agree on it before the
  # service exists (the URL would make the service depend on itself).
  _push_audience = coalesce(var.ingest.push_audience, "${var.name_prefix}-ingest/${var.project_id}")
  _common_env = {
    AEROFLOW_BIGQUERY_DATASET  = var.bigquery.dataset_id
    AEROFLOW_BIGQUERY_LOCATION = var.bigquery.location
    AEROFLOW_ENVIRONMENT       = "production"
    AEROFLOW_GCP_PROJECT       = var.project_id
    AEROFLOW_LOG_JSON          = "true"
    AEROFLOW_STORAGE_BACKEND   = "bigquery"
  }
  # The app refuses to serve the push endpoint on Cloud Run (K_SERVICE set) without token
  # verification; only the ingest service has that endpoint, so only it gets these.
  _push_env = {
    AEROFLOW_PUSH_OIDC_AUDIENCE   = local._push_audience
    AEROFLOW_PUSH_OIDC_ENABLED    = "true"
    AEROFLOW_PUSH_SERVICE_ACCOUNT = google_service_account.push.email
  }
  # Python serves one core per process: one API worker per whole CPU ("2" or "2000m"), each
  # with its own BigQuery client (docs/operations.md).
  _api_cpus    = endswith(var.api.cpu, "m") ? tonumber(trimsuffix(var.api.cpu, "m")) / 1000 : tonumber(var.api.cpu)
  _api_workers = coalesce(var.api.workers, max(1, floor(local._api_cpus)))
  _api_env     = merge(local._common_env, { AEROFLOW_API_WORKERS = tostring(local._api_workers) }, var.api.env)
  _ingest_env  = merge(local._common_env, local._push_env, var.ingest.env)
}
