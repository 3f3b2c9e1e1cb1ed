locals {
  _subscription_filter = "resource.labels.subscription_id=one_of(${join(", ", [for s in var.pubsub.subscriptions : "\"${s}\""])})"
  # One chart per tile: [title, filter, aligner, reducer, group_by].
  _dashboard_charts = [
    ["API requests/s by response class", local._api_requests, "ALIGN_RATE", "REDUCE_SUM", ["metric.label.response_code_class"]],
    ["API latency p99 (ms)", local._api_latencies, "ALIGN_DELTA", "REDUCE_PERCENTILE_99", []],
    ["API latency p50 (ms)", local._api_latencies, "ALIGN_DELTA", "REDUCE_PERCENTILE_50", []],
    ["Cloud Run active instances", "metric.type=\"run.googleapis.com/container/instance_count\" AND resource.type=\"cloud_run_revision\" AND metric.labels.state=\"active\"", "ALIGN_MAX", "REDUCE_SUM", ["resource.label.service_name"]],
    ["Cloud Run CPU utilisation p99", "metric.type=\"run.googleapis.com/container/cpu/utilizations\" AND resource.type=\"cloud_run_revision\"", "ALIGN_PERCENTILE_99", "REDUCE_MAX", ["resource.label.service_name"]],
    ["Pub/Sub oldest unacked message age (s)", "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type=\"pubsub_subscription\" AND ${local._subscription_filter}", "ALIGN_MAX", "REDUCE_MAX", ["resource.label.subscription_id"]],
    ["Pub/Sub undelivered messages", "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND ${local._subscription_filter}", "ALIGN_MAX", "REDUCE_SUM", ["resource.label.subscription_id"]],
    ["Pub/Sub messages dead-lettered", "metric.type=\"pubsub.googleapis.com/subscription/dead_letter_message_count\" AND resource.type=\"pubsub_subscription\" AND ${local._subscription_filter}", "ALIGN_SUM", "REDUCE_SUM", ["resource.label.subscription_id"]],
  ]
}

resource "google_monitoring_dashboard" "default" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "${var.name_prefix} overview"
    mosaicLayout = {
      columns = 12
      tiles = concat(
        [
          for i, slo in [google_monitoring_slo.availability, google_monitoring_slo.latency] : {
            xPos   = i * 6
            yPos   = 0
            width  = 6
            height = 4
            widget = {
              title = "Error budget left: ${slo.display_name}"
              scorecard = {
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = "select_slo_budget_fraction(\"${slo.name}\")"
                  }
                }
                thresholds = [{ value = 0.25, color = "YELLOW", direction = "BELOW" }]
              }
            }
          }
        ],
        [
          for i, chart in local._dashboard_charts : {
            xPos   = (i % 2) * 6
            yPos   = 4 + floor(i / 2) * 4
            width  = 6
            height = 4
            widget = {
              title = chart[0]
              xyChart = {
                dataSets = [{
                  plotType = "LINE"
                  timeSeriesQuery = {
                    timeSeriesFilter = {
                      filter = chart[1]
                      aggregation = {
                        alignmentPeriod    = "60s"
                        perSeriesAligner   = chart[2]
                        crossSeriesReducer = chart[3]
                        groupByFields      = chart[4]
                      }
                    }
                  }
                }]
              }
            }
          }
        ],
      )
    }
  })
}
