output "api_service_name" {
  description = "Name of the read API service."
  value       = google_cloud_run_v2_service.api.name
}

output "api_url" {
  description = "URL of the read API."
  value       = google_cloud_run_v2_service.api.uri
}

output "image_repository" {
  description = "Docker repository path: push images as <this>/aeroflow:<git sha>."
  value       = "${google_artifact_registry_repository.default.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.default.repository_id}"
}

output "ingest_service_name" {
  description = "Name of the push ingest service."
  value       = google_cloud_run_v2_service.ingest.name
}

output "ingest_url" {
  description = "URL of the push ingest service."
  value       = google_cloud_run_v2_service.ingest.uri
}

output "push_audience" {
  description = "OIDC audience Pub/Sub must put in push tokens (AEROFLOW_PUSH_OIDC_AUDIENCE)."
  value       = local._push_audience
}

output "push_endpoint" {
  description = "Push endpoint for the Pub/Sub subscription."
  value       = "${google_cloud_run_v2_service.ingest.uri}/pubsub/push"
}

output "repository" {
  description = "The Artifact Registry repository, for IAM grants."
  value = {
    location      = google_artifact_registry_repository.default.location
    repository_id = google_artifact_registry_repository.default.repository_id
  }
}

output "runtime_service_account_ids" {
  description = "Fully qualified ids of the service accounts the services run as (CD needs actAs on them)."
  value = {
    api    = google_service_account.api.id
    ingest = google_service_account.ingest.id
  }
}

output "secrets" {
  description = "Secret Manager secret ids to add versions to."
  value = {
    api_keys = google_secret_manager_secret.api_keys.secret_id
    cursor   = google_secret_manager_secret.cursor.secret_id
  }
}

output "service_accounts" {
  description = "Service account emails by workload (worker is null unless requested)."
  value = {
    api    = google_service_account.api.email
    ingest = google_service_account.ingest.email
    push   = google_service_account.push.email
    worker = var.worker_service_account ? google_service_account.worker[0].email : null
  }
}

output "services" {
  description = "The Cloud Run services, for deployer IAM grants."
  value = {
    api    = { location = var.region, name = google_cloud_run_v2_service.api.name }
    ingest = { location = var.region, name = google_cloud_run_v2_service.ingest.name }
  }
}
