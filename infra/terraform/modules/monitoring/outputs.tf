output "alert_policies" {
  description = "Alert policy ids by purpose."
  value = merge(
    { for k, p in google_monitoring_alert_policy.slo_burn : "slo-${k}" => p.id },
    { for k, p in google_monitoring_alert_policy.pubsub_backlog_age : "pubsub-backlog-${k}" => p.id },
    { for k, p in google_monitoring_alert_policy.cloud_run_5xx : "cloud-run-5xx-${k}" => p.id },
    { for k, p in google_monitoring_alert_policy.cloud_run_saturation : "cloud-run-saturation-${k}" => p.id },
    { "dead-letters" = google_monitoring_alert_policy.dead_letters.id },
    var.uptime_check.enabled ? { uptime = google_monitoring_alert_policy.uptime[0].id } : {},
  )
}

output "dashboard_id" {
  description = "Id of the Cloud Monitoring dashboard."
  value       = google_monitoring_dashboard.default.id
}

output "service_id" {
  description = "Id of the Cloud Monitoring custom service that holds the SLOs."
  value       = google_monitoring_custom_service.api.service_id
}

output "slos" {
  description = "Full resource names of the SLOs (for select_slo_* queries)."
  value = {
    availability = google_monitoring_slo.availability.name
    latency      = google_monitoring_slo.latency.name
  }
}

output "uptime_check_id" {
  description = "Id of the /healthz uptime check, or null when disabled."
  value       = var.uptime_check.enabled ? google_monitoring_uptime_check_config.healthz[0].uptime_check_id : null
}
