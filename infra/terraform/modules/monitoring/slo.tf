# Request-based SLOs measured by Cloud Run itself: they also count the failures the app never
# sees (crashes, start-up timeouts, 429/503 from Cloud Run's front end).

resource "google_monitoring_slo" "availability" {
  project             = var.project_id
  service             = google_monitoring_custom_service.api.service_id
  slo_id              = "availability"
  display_name        = "${var.name_prefix} API: ${var.slo.availability_goal * 100} % of requests without a 5xx (${var.slo.rolling_period_days} d)"
  goal                = var.slo.availability_goal
  rolling_period_days = var.slo.rolling_period_days
  user_labels         = local._labels
  request_based_sli {
    good_total_ratio {
      bad_service_filter   = "${local._api_requests} AND metric.labels.response_code_class=\"5xx\""
      total_service_filter = local._api_requests
    }
  }
}

resource "google_monitoring_slo" "latency" {
  project             = var.project_id
  service             = google_monitoring_custom_service.api.service_id
  slo_id              = "latency"
  display_name        = "${var.name_prefix} API: ${var.slo.latency_goal * 100} % of requests within ${var.slo.latency_threshold_ms} ms (${var.slo.rolling_period_days} d)"
  goal                = var.slo.latency_goal
  rolling_period_days = var.slo.rolling_period_days
  user_labels         = local._labels
  request_based_sli {
    distribution_cut {
      # request_latencies is in milliseconds.
      distribution_filter = local._api_latencies
      range {
        max = var.slo.latency_threshold_ms
      }
    }
  }
}
