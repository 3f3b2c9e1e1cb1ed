resource "google_monitoring_uptime_check_config" "healthz" {
  count        = var.uptime_check.enabled ? 1 : 0
  project      = var.project_id
  display_name = "${var.name_prefix} API ${var.uptime_check.path}"
  timeout      = "10s"
  period       = var.uptime_check.period
  user_labels  = local._labels
  http_check {
    path         = var.uptime_check.path
    port         = 443
    use_ssl      = true
    validate_ssl = true
    accepted_response_status_codes {
      status_class = "STATUS_CLASS_2XX"
    }
    dynamic "service_agent_authentication" {
      for_each = var.uptime_check.oidc ? [""] : []
      content {
        type = "OIDC_TOKEN"
      }
    }
  }
  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project_id
      host       = local._api_host
    }
  }
}

resource "google_monitoring_alert_policy" "uptime" {
  count                 = var.uptime_check.enabled ? 1 : 0
  project               = var.project_id
  display_name          = "${var.name_prefix} API ${var.uptime_check.path} uptime check failing"
  combiner              = "OR"
  severity              = local._severity.page
  notification_channels = local._channels.page
  user_labels           = merge(local._labels, { severity = "page" })
  conditions {
    display_name = "more than one checker region fails"
    condition_threshold {
      filter = join(" AND ", [
        "metric.type=\"monitoring.googleapis.com/uptime_check/check_passed\"",
        "resource.type=\"uptime_url\"",
        "metric.labels.check_id=\"${google_monitoring_uptime_check_config.healthz[0].uptime_check_id}\"",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "300s"
      aggregations {
        alignment_period     = "1200s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.label.*"]
      }
    }
  }
  documentation {
    mime_type = "text/markdown"
    content   = "Uptime checkers cannot get a 2xx from ${var.api_service.url}${var.uptime_check.path}. Runbook: ${var.runbook_base_url}#uptime-healthz"
  }
}
