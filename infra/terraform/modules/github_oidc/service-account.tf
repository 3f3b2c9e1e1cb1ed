# The identity GitHub Actions deploys as. No key is ever created: workflows exchange their
# OIDC token for short-lived credentials through the pool above.
resource "google_service_account" "deployer" {
  project      = var.project_id
  account_id   = var.deployer_account_id
  display_name = "aeroflow deployer (GitHub Actions)"
  description  = "Pushes images and rolls Cloud Run revisions for ${var.github_repository}."
}

resource "google_service_account_iam_member" "deployer_workload_identity" {
  service_account_id = google_service_account.deployer.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.repository/${var.github_repository}"
}
