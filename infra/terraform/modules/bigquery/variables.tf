variable "dataset_id" {
  description = "BigQuery dataset id."
  type        = string
  default     = "aeroflow"
  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,1024}$", var.dataset_id))
    error_message = "A dataset id has only letters, digits and underscores."
  }
}

variable "deletion_protection" {
  description = "Refuse to destroy tables and views (Terraform-side guard). Keep true outside throwaway projects."
  type        = bool
  default     = true
}

variable "flights_latest_view" {
  description = "Also create the view flights_latest: the current state derived from flight_events with no maintenance."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels on the dataset and its tables."
  type        = map(string)
  default     = {}
}

variable "location" {
  description = "Dataset location, a multi-region (EU, US) or a region (europe-west1). Must match AEROFLOW_BIGQUERY_LOCATION."
  type        = string
}

variable "project_id" {
  description = "Project that holds the dataset."
  type        = string
}

variable "raw_events_table" {
  description = "Create flight_events_raw, the table a Pub/Sub BigQuery subscription writes raw messages to."
  type        = bool
  default     = false
}

variable "rejected_messages_retention_days" {
  description = "Days a partition of rejected_messages is kept; null keeps them forever."
  type        = number
  default     = 90
  validation {
    condition     = var.rejected_messages_retention_days == null || try(var.rejected_messages_retention_days >= 1, false)
    error_message = "Retention is at least one day, or null."
  }
}
