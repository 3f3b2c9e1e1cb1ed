# What the pipeline does, and nothing else: push the image to one repository, roll revisions
# and traffic of the named services, and act as their runtime identities while doing so.

resource "google_artifact_registry_repository_iam_member" "deployer_writer" {
  project    = var.project_id
  location   = var.artifact_registry.location
  repository = var.artifact_registry.repository_id
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.deployer.member
}

resource "google_cloud_run_v2_service_iam_member" "deployer_developer" {
  for_each = var.cloud_run_services
  project  = var.project_id
  location = each.value.location
  name     = each.value.name
  role     = "roles/run.developer"
  member   = google_service_account.deployer.member
}

resource "google_service_account_iam_member" "deployer_act_as" {
  for_each           = var.runtime_service_accounts
  service_account_id = each.value
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.deployer.member
}
