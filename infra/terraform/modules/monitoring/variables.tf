variable "api_service" {
  description = "The read API's Cloud Run service: its name, region and public URL (for the uptime check)."
  type = object({
    name     = string
    location = string
    url      = string
  })
  validation {
    condition     = startswith(var.api_service.url, "https://")
    error_message = "api_service.url must be the service's https:// URL."
  }
}

variable "cloud_run_services" {
  description = "Cloud Run services watched for 5xx ratio and saturation, by key (e.g. api, ingest), with their max_instances."
  type = map(object({
    name          = string
    location      = string
    max_instances = number
  }))
}

variable "labels" {
  description = "User labels put on the SLOs and alert policies."
  type        = map(string)
  default     = {}
}

variable "name_prefix" {
  description = "Prefix of every display name and id (one per environment, e.g. aeroflow-prod)."
  type        = string
  default     = "aeroflow"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.name_prefix))
    error_message = "name_prefix must be lower case letters, digits and dashes, at most 31 characters."
  }
}

variable "notification_channels" {
  description = "Notification channel ids (projects/P/notificationChannels/N) for page-severity and ticket-severity policies."
  type = object({
    page   = optional(list(string), [])
    ticket = optional(list(string), [])
  })
  default  = {}
  nullable = false
}

variable "project_id" {
  description = "Project that holds the Cloud Run services, the Pub/Sub subscriptions and the monitoring resources."
  type        = string
}

variable "pubsub" {
  description = "Subscriptions watched for backlog age and dead-lettering, and the thresholds (seconds)."
  type = object({
    subscriptions              = list(string)
    backlog_age_page_seconds   = optional(number, 300)
    backlog_age_ticket_seconds = optional(number, 60)
  })
  validation {
    condition     = var.pubsub.backlog_age_ticket_seconds < var.pubsub.backlog_age_page_seconds
    error_message = "The ticket backlog age must be below the page backlog age."
  }
}

variable "runbook_base_url" {
  description = "URL of docs/runbooks.md in the repository; each policy's documentation links to an anchor in it."
  type        = string
  default     = "https://github.com/OWNER/aeroflow/blob/main/docs/runbooks.md"
}

variable "slo" {
  description = "SLO targets of the read API, measured by Cloud Run (so they include failures aeroflow never sees)."
  type = object({
    availability_goal           = optional(number, 0.999)
    latency_goal                = optional(number, 0.99)
    latency_threshold_ms        = optional(number, 500)
    rolling_period_days         = optional(number, 30)
    error_ratio_alert_threshold = optional(number, 0.05)
    cpu_saturation_threshold    = optional(number, 0.8)
  })
  default  = {}
  nullable = false
  validation {
    condition = alltrue([
      var.slo.availability_goal > 0 && var.slo.availability_goal <= 0.999,
      var.slo.latency_goal > 0 && var.slo.latency_goal <= 0.999,
    ])
    error_message = "SLO goals must be in (0, 0.999] (Cloud Monitoring's upper bound)."
  }
  validation {
    condition     = var.slo.rolling_period_days >= 1 && var.slo.rolling_period_days <= 30
    error_message = "rolling_period_days must be between 1 and 30."
  }
}

variable "uptime_check" {
  description = "Uptime check on the API's /healthz; set oidc when the service requires IAM authentication."
  type = object({
    enabled = optional(bool, true)
    path    = optional(string, "/healthz")
    period  = optional(string, "60s")
    oidc    = optional(bool, false)
  })
  default  = {}
  nullable = false
  validation {
    condition     = contains(["60s", "300s", "600s", "900s"], var.uptime_check.period)
    error_message = "uptime_check.period must be one of 60s, 300s, 600s, 900s."
  }
}
