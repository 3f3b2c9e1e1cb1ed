# Cloud Monitoring for aeroflow: SLOs on the read API with multi-window burn-rate alerts,
# Pub/Sub backlog and dead-letter alerts, Cloud Run 5xx ratio and saturation alerts, an uptime
# check on /healthz and a dashboard. Every policy's documentation is its runbook section.

locals {
  _api_host = trimsuffix(trimprefix(var.api_service.url, "https://"), "/")
  # Request metrics of the API's Cloud Run service (all revisions).
  _api_requests = join(" AND ", [
    "metric.type=\"run.googleapis.com/request_count\"",
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${var.api_service.name}\"",
    "resource.labels.location=\"${var.api_service.location}\"",
  ])
  _api_latencies = join(" AND ", [
    "metric.type=\"run.googleapis.com/request_latencies\"",
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${var.api_service.name}\"",
    "resource.labels.location=\"${var.api_service.location}\"",
  ])
  _channels = {
    page   = var.notification_channels.page
    ticket = var.notification_channels.ticket
  }
  _severity = { page = "CRITICAL", ticket = "WARNING" }
  _labels   = merge({ app = "aeroflow" }, var.labels)
}

resource "google_monitoring_custom_service" "api" {
  project      = var.project_id
  service_id   = "${var.name_prefix}-api"
  display_name = "${var.name_prefix} read API (Cloud Run)"
  user_labels  = local._labels
  telemetry {
    resource_name = "//run.googleapis.com/projects/${var.project_id}/locations/${var.api_service.location}/services/${var.api_service.name}"
  }
}
