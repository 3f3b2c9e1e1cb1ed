# Alert policies. Severity "page" policies notify the page channels, "ticket" ones the ticket
# channels; each carries its runbook as documentation.

locals {
  # SRE workbook multi-window burn rates: both windows must exceed the rate, so an alert
  # starts within minutes of a real burn and stops soon after it ends.
  _burn_windows = {
    fast   = { long = "3600s", short = "300s", rate = 14.4, severity = "page", budget = "2 % of the budget in 1 h" }
    medium = { long = "21600s", short = "1800s", rate = 6, severity = "page", budget = "5 % of the budget in 6 h" }
    slow   = { long = "86400s", short = "7200s", rate = 3, severity = "ticket", budget = "10 % of the budget in 1 day" }
  }
  _slos = {
    availability = { name = google_monitoring_slo.availability.name, anchor = "api-availability-burn" }
    latency      = { name = google_monitoring_slo.latency.name, anchor = "api-latency-burn" }
  }
  _burn_alerts = {
    for pair in setproduct(keys(local._slos), keys(local._burn_windows)) :
    "${pair[0]}-${pair[1]}" => merge(local._burn_windows[pair[1]], local._slos[pair[0]], { slo = pair[0], window = pair[1] })
  }
}

resource "google_monitoring_alert_policy" "slo_burn" {
  for_each              = local._burn_alerts
  project               = var.project_id
  display_name          = "${var.name_prefix} API ${each.value.slo} SLO: ${each.value.window} burn (x${each.value.rate})"
  combiner              = "AND"
  severity              = local._severity[each.value.severity]
  notification_channels = local._channels[each.value.severity]
  user_labels           = merge(local._labels, { severity = each.value.severity, slo = each.value.slo })
  conditions {
    display_name = "burn rate over ${each.value.long} above ${each.value.rate}"
    condition_threshold {
      filter          = "select_slo_burn_rate(\"${each.value.name}\", \"${each.value.long}\")"
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.rate
      duration        = "0s"
    }
  }
  conditions {
    display_name = "burn rate over ${each.value.short} above ${each.value.rate}"
    condition_threshold {
      filter          = "select_slo_burn_rate(\"${each.value.name}\", \"${each.value.short}\")"
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.rate
      duration        = "0s"
    }
  }
  documentation {
    mime_type = "text/markdown"
    content   = "The API ${each.value.slo} SLO is burning ${each.value.budget} (burn rate ${each.value.rate}). Runbook: ${var.runbook_base_url}#${each.value.anchor}"
  }
}

resource "google_monitoring_alert_policy" "pubsub_backlog_age" {
  for_each = {
    ticket = var.pubsub.backlog_age_ticket_seconds
    page   = var.pubsub.backlog_age_page_seconds
  }
  project               = var.project_id
  display_name          = "${var.name_prefix} Pub/Sub: oldest unacked message older than ${each.value} s"
  combiner              = "OR"
  severity              = local._severity[each.key]
  notification_channels = local._channels[each.key]
  user_labels           = merge(local._labels, { severity = each.key })
  conditions {
    display_name = "oldest_unacked_message_age > ${each.value} s"
    condition_threshold {
      filter = join(" AND ", [
        "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\"",
        "resource.type=\"pubsub_subscription\"",
        "resource.labels.subscription_id=one_of(${join(", ", [for s in var.pubsub.subscriptions : "\"${s}\""])})",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = each.value
      duration        = each.key == "page" ? "300s" : "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }
  documentation {
    mime_type = "text/markdown"
    content   = "Messages wait longer than ${each.value} s in a subscription: delivery or acknowledgement is stuck or too slow. Runbook: ${var.runbook_base_url}#pubsub-backlog-age"
  }
}

resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project_id
  display_name          = "${var.name_prefix} Pub/Sub: messages forwarded to the dead-letter topic"
  combiner              = "OR"
  severity              = local._severity.ticket
  notification_channels = local._channels.ticket
  user_labels           = merge(local._labels, { severity = "ticket" })
  conditions {
    display_name = "dead_letter_message_count > 0"
    condition_threshold {
      filter = join(" AND ", [
        "metric.type=\"pubsub.googleapis.com/subscription/dead_letter_message_count\"",
        "resource.type=\"pubsub_subscription\"",
        "resource.labels.subscription_id=one_of(${join(", ", [for s in var.pubsub.subscriptions : "\"${s}\""])})",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.subscription_id"]
      }
    }
  }
  documentation {
    mime_type = "text/markdown"
    content   = "Messages exhausted their delivery attempts and went to the dead-letter topic, where they are kept. Runbook: ${var.runbook_base_url}#dead-letter-growing"
  }
}

resource "google_monitoring_alert_policy" "cloud_run_5xx" {
  for_each              = var.cloud_run_services
  project               = var.project_id
  display_name          = "${var.name_prefix} Cloud Run ${each.key}: 5xx above ${var.slo.error_ratio_alert_threshold * 100} % of requests"
  combiner              = "OR"
  severity              = local._severity.page
  notification_channels = local._channels.page
  user_labels           = merge(local._labels, { severity = "page", service = each.key })
  conditions {
    display_name = "5xx / all requests > ${var.slo.error_ratio_alert_threshold} for 5 min"
    condition_threshold {
      filter = join(" AND ", [
        "metric.type=\"run.googleapis.com/request_count\"",
        "resource.type=\"cloud_run_revision\"",
        "resource.labels.service_name=\"${each.value.name}\"",
        "metric.labels.response_code_class=\"5xx\"",
      ])
      denominator_filter = join(" AND ", [
        "metric.type=\"run.googleapis.com/request_count\"",
        "resource.type=\"cloud_run_revision\"",
        "resource.labels.service_name=\"${each.value.name}\"",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = var.slo.error_ratio_alert_threshold
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
      denominator_aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }
  documentation {
    mime_type = "text/markdown"
    content   = "Cloud Run answers 5xx for more than ${var.slo.error_ratio_alert_threshold * 100} % of requests to ${each.value.name}. Runbook: ${var.runbook_base_url}#cloud-run-5xx"
  }
}

resource "google_monitoring_alert_policy" "cloud_run_saturation" {
  for_each              = var.cloud_run_services
  project               = var.project_id
  display_name          = "${var.name_prefix} Cloud Run ${each.key}: instances saturated"
  combiner              = "OR"
  severity              = local._severity.ticket
  notification_channels = local._channels.ticket
  user_labels           = merge(local._labels, { severity = "ticket", service = each.key })
  conditions {
    display_name = "p99 container CPU utilisation > ${var.slo.cpu_saturation_threshold} for 10 min"
    condition_threshold {
      filter = join(" AND ", [
        "metric.type=\"run.googleapis.com/container/cpu/utilizations\"",
        "resource.type=\"cloud_run_revision\"",
        "resource.labels.service_name=\"${each.value.name}\"",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = var.slo.cpu_saturation_threshold
      duration        = "600s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_PERCENTILE_99"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }
  conditions {
    display_name = "active instances at 90 % of max_instances (${each.value.max_instances}) for 10 min"
    condition_threshold {
      filter = join(" AND ", [
        "metric.type=\"run.googleapis.com/container/instance_count\"",
        "resource.type=\"cloud_run_revision\"",
        "resource.labels.service_name=\"${each.value.name}\"",
        "metric.labels.state=\"active\"",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = 0.9 * each.value.max_instances
      duration        = "600s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }
  documentation {
    mime_type = "text/markdown"
    content   = "${each.value.name} runs out of headroom: CPU near its limit or instances near max_instances. Latency follows. Runbook: ${var.runbook_base_url}#cloud-run-saturation"
  }
}
