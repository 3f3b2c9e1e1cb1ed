# Every delivering subscription shares the same failure handling: exponential backoff between
# redeliveries (the app answers 429/503 when storage is down and lets Pub/Sub back off), and
# the dead-letter topic after max_delivery_attempts. None expires when idle.

resource "google_pubsub_subscription" "push" {
  project                    = var.project_id
  name                       = "${var.topic_name}-ingest-push"
  topic                      = google_pubsub_topic.default.id
  labels                     = var.labels
  ack_deadline_seconds       = var.push_subscription.ack_deadline_seconds
  message_retention_duration = var.message_retention_duration

  push_config {
    push_endpoint = var.push_subscription.endpoint
    oidc_token {
      service_account_email = var.push_subscription.service_account_email
      audience              = var.push_subscription.audience
    }
  }

  retry_policy {
    minimum_backoff = var.push_subscription.minimum_backoff
    maximum_backoff = var.push_subscription.maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.dead_letter.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  # Dead-lettering only works once the service agent may publish to the dead-letter topic.
  depends_on = [google_pubsub_topic_iam_member.dead_letter_publisher]
}

resource "google_pubsub_subscription" "pull" {
  count                        = var.pull_subscription == null ? 0 : 1
  project                      = var.project_id
  name                         = "${var.topic_name}-pull"
  topic                        = google_pubsub_topic.default.id
  labels                       = var.labels
  ack_deadline_seconds         = var.pull_subscription.ack_deadline_seconds
  enable_exactly_once_delivery = var.pull_subscription.enable_exactly_once_delivery
  message_retention_duration   = var.message_retention_duration

  retry_policy {
    minimum_backoff = var.pull_subscription.minimum_backoff
    maximum_backoff = var.pull_subscription.maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.dead_letter.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_pubsub_topic_iam_member.dead_letter_publisher]
}

# Zero-code alternative for raw events: Pub/Sub writes each message's JSON body and metadata
# straight into BigQuery (at least once; dedupe on message_id when reading).
resource "google_pubsub_subscription" "bigquery" {
  count                      = var.bigquery_subscription == null ? 0 : 1
  project                    = var.project_id
  name                       = "${var.topic_name}-bigquery-raw"
  topic                      = google_pubsub_topic.default.id
  labels                     = var.labels
  message_retention_duration = var.message_retention_duration

  bigquery_config {
    table            = var.bigquery_subscription.table
    use_topic_schema = false
    write_metadata   = var.bigquery_subscription.write_metadata
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.dead_letter.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_bigquery_dataset_iam_member.service_agent_bigquery,
    google_pubsub_topic_iam_member.dead_letter_publisher,
  ]
}
