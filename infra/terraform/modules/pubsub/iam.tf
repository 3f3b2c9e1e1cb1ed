data "google_project" "default" {
  project_id = var.project_id
}

locals {
  # The Google-managed Pub/Sub service agent: it dead-letters, mints push OIDC tokens and
  # writes BigQuery subscriptions. It gets exactly those rights, on those resources.
  _service_agent = "serviceAccount:service-${data.google_project.default.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  _dead_lettered = merge(
    { push = google_pubsub_subscription.push.name },
    var.pull_subscription == null ? {} : { pull = google_pubsub_subscription.pull[0].name },
    var.bigquery_subscription == null ? {} : { bigquery = google_pubsub_subscription.bigquery[0].name },
  )
}

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local._service_agent
}

# To forward a message to the dead-letter topic the agent must ack it on the source.
resource "google_pubsub_subscription_iam_member" "dead_letter_source" {
  for_each     = local._dead_lettered
  project      = var.project_id
  subscription = each.value
  role         = "roles/pubsub.subscriber"
  member       = local._service_agent
}

# Lets the agent mint OIDC tokens for the push identity (and only that identity).
resource "google_service_account_iam_member" "push_token_creator" {
  service_account_id = "projects/${var.project_id}/serviceAccounts/${var.push_subscription.service_account_email}"
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local._service_agent
}

# BigQuery subscription: write access to the one dataset, never the project.
resource "google_bigquery_dataset_iam_member" "service_agent_bigquery" {
  count      = var.bigquery_subscription == null ? 0 : 1
  project    = var.project_id
  dataset_id = var.bigquery_subscription.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = local._service_agent
}

resource "google_pubsub_topic_iam_member" "publishers" {
  for_each = var.publishers
  project  = var.project_id
  topic    = google_pubsub_topic.default.name
  role     = "roles/pubsub.publisher"
  member   = each.value
}

resource "google_pubsub_subscription_iam_member" "pull_subscribers" {
  for_each     = var.pull_subscription == null ? {} : var.pull_subscription.subscribers
  project      = var.project_id
  subscription = google_pubsub_subscription.pull[0].name
  role         = "roles/pubsub.subscriber"
  member       = each.value
}

resource "google_pubsub_subscription_iam_member" "dead_letter_readers" {
  for_each     = toset(var.dead_letter.readers)
  project      = var.project_id
  subscription = google_pubsub_subscription.dead_letter.name
  role         = "roles/pubsub.subscriber"
  member       = each.key
}
