variable "bigquery_subscription" {
  description = "Optional native BigQuery subscription writing raw messages (no code) to `table` (project.dataset.table) in `dataset_id`."
  type = object({
    dataset_id     = string
    table          = string
    write_metadata = optional(bool, true)
  })
  default = null
  validation {
    condition     = var.bigquery_subscription == null || can(regex("^[^.]+\\.[^.]+\\.[^.]+$", var.bigquery_subscription.table))
    error_message = "bigquery_subscription.table is project.dataset.table."
  }
}

variable "dead_letter" {
  description = "Dead-letter topic settings: how many deliveries before a message is set aside, and who may read the dead letters."
  type = object({
    max_delivery_attempts      = optional(number, 10)
    message_retention_duration = optional(string, "604800s")
    readers                    = optional(list(string), [])
  })
  default = {}
  validation {
    condition     = var.dead_letter.max_delivery_attempts >= 5 && var.dead_letter.max_delivery_attempts <= 100
    error_message = "Pub/Sub accepts 5-100 delivery attempts."
  }
}

variable "labels" {
  description = "Labels on topics and subscriptions."
  type        = map(string)
  default     = {}
}

variable "message_retention_duration" {
  description = "How long the topic keeps messages, acked or not, so subscriptions can seek back (replay)."
  type        = string
  default     = "604800s"
  validation {
    condition     = can(regex("^[0-9]+s$", var.message_retention_duration))
    error_message = "A duration in seconds, such as 604800s."
  }
}

variable "project_id" {
  description = "Project that holds the topics and subscriptions."
  type        = string
}

variable "publishers" {
  description = "Members allowed to publish to the topic, keyed by a static name (values may be unknown until apply)."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for m in values(var.publishers) : !contains(["allUsers", "allAuthenticatedUsers"], m)])
    error_message = "The topic is never public."
  }
}

variable "pull_subscription" {
  description = "Optional streaming-pull subscription for `aeroflow worker`; subscribers maps a static name to each member allowed to pull."
  type = object({
    ack_deadline_seconds         = optional(number, 60)
    enable_exactly_once_delivery = optional(bool, true)
    maximum_backoff              = optional(string, "600s")
    minimum_backoff              = optional(string, "10s")
    subscribers                  = map(string)
  })
  default = null
  validation {
    condition     = var.pull_subscription == null || try(var.pull_subscription.ack_deadline_seconds >= 10 && var.pull_subscription.ack_deadline_seconds <= 600, false)
    error_message = "Ack deadline is 10-600 seconds."
  }
}

variable "push_subscription" {
  description = "Push subscription to the ingest service, authenticated with an OIDC token of `service_account_email` for `audience`."
  type = object({
    ack_deadline_seconds  = optional(number, 60)
    audience              = string
    endpoint              = string
    maximum_backoff       = optional(string, "600s")
    minimum_backoff       = optional(string, "10s")
    service_account_email = string
  })
  validation {
    condition     = startswith(var.push_subscription.endpoint, "https://")
    error_message = "Push endpoints are https URLs."
  }
  validation {
    condition     = var.push_subscription.ack_deadline_seconds >= 10 && var.push_subscription.ack_deadline_seconds <= 600
    error_message = "Ack deadline is 10-600 seconds."
  }
  validation {
    condition     = length(var.push_subscription.audience) > 0
    error_message = "An OIDC audience is required: the ingest service checks it."
  }
}

variable "schema" {
  description = "Topic schema: the generated Avro definition, checked by Pub/Sub on publish. JSON encoding lets publishers send JSON text."
  type = object({
    definition = string
    encoding   = optional(string, "JSON")
    type       = optional(string, "AVRO")
  })
  validation {
    condition     = contains(["JSON", "BINARY"], var.schema.encoding)
    error_message = "schema.encoding is JSON or BINARY."
  }
  validation {
    condition     = contains(["AVRO", "PROTOCOL_BUFFER"], var.schema.type)
    error_message = "schema.type is AVRO or PROTOCOL_BUFFER."
  }
}

variable "topic_name" {
  description = "Name of the events topic."
  type        = string
  default     = "flight-events"
}
