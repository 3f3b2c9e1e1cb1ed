locals {
  # Project-level grants: only what cannot be scoped lower. Running a query is a job in the
  # project (jobUser); the API also opens Storage Read API sessions (readSessionUser).
  _project_roles = merge(
    { for r in concat(["roles/bigquery.jobUser", "roles/bigquery.readSessionUser"], var.api.extra_project_roles) :
    "api/${r}" => { member = google_service_account.api.member, role = r } },
    { for r in concat(["roles/bigquery.jobUser"], var.ingest.extra_project_roles) :
    "ingest/${r}" => { member = google_service_account.ingest.member, role = r } },
    var.worker_service_account ? {
      "worker/roles/bigquery.jobUser" = { member = google_service_account.worker[0].member, role = "roles/bigquery.jobUser" }
    } : {},
  )
}

resource "google_project_iam_member" "default" {
  for_each = local._project_roles
  project  = var.project_id
  role     = each.value.role
  member   = each.value.member
}

# BigQuery data access is scoped to the dataset: the API reads, ingest (and worker) write.

resource "google_bigquery_dataset_iam_member" "api_viewer" {
  project    = var.project_id
  dataset_id = var.bigquery.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = google_service_account.api.member
}

resource "google_bigquery_dataset_iam_member" "ingest_editor" {
  project    = var.project_id
  dataset_id = var.bigquery.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.ingest.member
}

resource "google_bigquery_dataset_iam_member" "worker_editor" {
  count      = var.worker_service_account ? 1 : 0
  project    = var.project_id
  dataset_id = var.bigquery.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.worker[0].member
}

# Secrets are readable per secret, by the services that use them.

resource "google_secret_manager_secret_iam_member" "api_cursor" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.cursor.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.api.member
}

resource "google_secret_manager_secret_iam_member" "api_api_keys" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.api_keys.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.api.member
}

resource "google_secret_manager_secret_iam_member" "ingest_cursor" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.cursor.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.ingest.member
}

resource "google_secret_manager_secret_iam_member" "worker_cursor" {
  count     = var.worker_service_account ? 1 : 0
  project   = var.project_id
  secret_id = google_secret_manager_secret.cursor.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.worker[0].member
}

# Who may call the services. Ingest: the push identity and nobody else.

resource "google_cloud_run_v2_service_iam_member" "ingest_push_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.ingest.name
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

# The API is public at the network and IAM level only when asked; the app then demands an API
# key on every /v1 request.
resource "google_cloud_run_v2_service_iam_member" "api_public_invoker" {
  count    = var.api.access == "public" ? 1 : 0
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.api.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_v2_service_iam_member" "api_invokers" {
  for_each = var.api.access == "iam" ? toset(var.api.invokers) : toset([])
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.api.name
  role     = "roles/run.invoker"
  member   = each.key
}
