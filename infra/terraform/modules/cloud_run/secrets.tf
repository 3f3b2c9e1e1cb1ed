# Secret containers only. Values are added out of band (gcloud secrets versions add) so they
# never enter the Terraform state; see infra/terraform/README.md.

resource "google_secret_manager_secret" "cursor" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-cursor-secret"
  labels    = var.labels
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret" "api_keys" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-api-keys"
  labels    = var.labels
  replication {
    auto {}
  }
}
