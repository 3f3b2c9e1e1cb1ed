# The identity GitHub Actions deploys as. No key is ever created: workflows exchange their
# OIDC token for short-lived credentials through the pool above.
resource "google_service_account" "deployer" {
  project      = var.project_id
  account_id   = var.deployer_account_id
  display_name = "aeroflow deployer (GitHub Actions)"
  description  = "Pushes images and rolls Cloud Run revisions for ${var.github_repository}."
}

# Only workflows of a deploy ref may act as the deployer; the provider already admits nothing
# from outside the repository, so the ref is the remaining pin (plan jobs run on PR refs).
resource "google_service_account_iam_member" "deployer_workload_identity" {
  for_each           = toset(var.deploy_refs)
  service_account_id = google_service_account.deployer.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.ref/${each.key}"
}
