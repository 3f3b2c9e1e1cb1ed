output "bigquery_subscription" {
  description = "Name of the BigQuery subscription, or null."
  value       = var.bigquery_subscription == null ? null : google_pubsub_subscription.bigquery[0].name
}

output "dead_letter_subscription" {
  description = "Name of the subscription that keeps dead letters."
  value       = google_pubsub_subscription.dead_letter.name
}

output "dead_letter_topic" {
  description = "Name of the dead-letter topic."
  value       = google_pubsub_topic.dead_letter.name
}

output "pull_subscription" {
  description = "Name of the worker's pull subscription (aeroflow worker --subscription), or null."
  value       = var.pull_subscription == null ? null : google_pubsub_subscription.pull[0].id
}

output "push_subscription" {
  description = "Name of the push subscription to the ingest service."
  value       = google_pubsub_subscription.push.name
}

output "schema" {
  description = "Id of the topic schema."
  value       = google_pubsub_schema.default.id
}

output "service_agent" {
  description = "The Pub/Sub service agent (IAM member form)."
  value       = local._service_agent
}

output "topic" {
  description = "Name of the events topic."
  value       = google_pubsub_topic.default.name
}

output "topic_id" {
  description = "Full id of the events topic (projects/<project>/topics/<name>)."
  value       = google_pubsub_topic.default.id
}
