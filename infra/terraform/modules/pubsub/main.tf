resource "google_pubsub_schema" "default" {
  project    = var.project_id
  name       = var.topic_name
  type       = var.schema.type
  definition = var.schema.definition
}

resource "google_pubsub_topic" "default" {
  project                    = var.project_id
  name                       = var.topic_name
  labels                     = var.labels
  message_retention_duration = var.message_retention_duration

  schema_settings {
    schema   = google_pubsub_schema.default.id
    encoding = var.schema.encoding
  }
}

# Messages that fail max_delivery_attempts times land here instead of blocking the stream.
resource "google_pubsub_topic" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.topic_name}-dead-letter"
  labels                     = var.labels
  message_retention_duration = var.dead_letter.message_retention_duration
}

# A topic without a subscription drops what it receives: this one keeps the dead letters for
# inspection and replay.
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.topic_name}-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  labels                     = var.labels
  ack_deadline_seconds       = 60
  message_retention_duration = var.dead_letter.message_retention_duration
  retain_acked_messages      = true

  expiration_policy {
    ttl = ""
  }
}
