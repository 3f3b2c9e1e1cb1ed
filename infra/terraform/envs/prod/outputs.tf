output "api_url" {
  description = "Base URL of the read API."
  value       = module.cloud_run.api_url
}

output "bigquery_dataset" {
  description = "BigQuery dataset id."
  value       = module.bigquery.dataset_id
}

output "dead_letter_topic" {
  description = "Where undeliverable messages go."
  value       = module.pubsub.dead_letter_topic
}

output "deployer_service_account" {
  description = "GitHub Actions variable GCP_DEPLOYER_SA."
  value       = module.github_oidc.deployer_email
}

output "image_repository" {
  description = "Push images here, tagged with the commit SHA."
  value       = module.cloud_run.image_repository
}

output "ingest_url" {
  description = "URL of the private ingest service (Pub/Sub pushes to <url>/pubsub/push)."
  value       = module.cloud_run.ingest_url
}

output "pull_subscription" {
  description = "Subscription for aeroflow worker --subscription, or null."
  value       = module.pubsub.pull_subscription
}

output "secrets" {
  description = "Secret Manager secrets to add versions to before the first deploy."
  value       = module.cloud_run.secrets
}

output "topic" {
  description = "Pub/Sub topic publishers send FlightEvents to."
  value       = module.pubsub.topic_id
}

output "workload_identity_provider" {
  description = "GitHub Actions variable GCP_WORKLOAD_IDENTITY_PROVIDER."
  value       = module.github_oidc.workload_identity_provider
}
