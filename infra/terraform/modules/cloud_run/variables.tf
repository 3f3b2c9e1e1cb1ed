variable "api" {
  description = "The read API service. access = public (anyone may call; the app checks API keys from Secret Manager) or iam (only `invokers` may call)."
  type = object({
    access              = optional(string, "public")
    concurrency         = optional(number, 80)
    cpu                 = optional(string, "1")
    cpu_idle            = optional(bool, true)
    env                 = optional(map(string), {})
    extra_project_roles = optional(list(string), [])
    invokers            = optional(list(string), [])
    max_instances       = optional(number, 10)
    memory              = optional(string, "512Mi")
    min_instances       = optional(number, 0)
    timeout             = optional(string, "30s")
    # `aeroflow api --workers`: processes per instance; null = one per whole CPU of `cpu`.
    workers = optional(number)
  })
  default = {}
  validation {
    condition     = var.api.workers == null || (var.api.workers >= 1 && var.api.workers <= 8)
    error_message = "api.workers is 1-8 processes per instance (null: one per whole CPU)."
  }
  validation {
    condition     = contains(["public", "iam"], var.api.access)
    error_message = "api.access is public or iam."
  }
  validation {
    condition     = var.api.access == "iam" || length(var.api.invokers) == 0
    error_message = "api.invokers only applies with access = iam."
  }
  validation {
    condition     = alltrue([for m in var.api.invokers : !contains(["allUsers", "allAuthenticatedUsers"], m)])
    error_message = "Use access = public rather than allUsers in api.invokers."
  }
  validation {
    condition     = var.api.min_instances >= 0 && var.api.max_instances >= max(1, var.api.min_instances)
    error_message = "Need 0 <= min_instances <= max_instances and max_instances >= 1."
  }
  validation {
    condition     = var.api.concurrency >= 1 && var.api.concurrency <= 1000
    error_message = "Concurrency is 1-1000 requests per instance."
  }
  validation {
    condition     = !contains(keys(var.api.env), "PORT")
    error_message = "PORT is set by Cloud Run and cannot be overridden."
  }
  validation {
    condition     = length(setintersection(var.api.extra_project_roles, ["roles/owner", "roles/editor", "roles/viewer"])) == 0
    error_message = "Primitive roles are not allowed."
  }
}

variable "artifact_registry" {
  description = "Docker repository for the aeroflow image. Tags are immutable by default: CD tags images with the commit SHA."
  type = object({
    delete_older_than_days = optional(number, 30)
    immutable_tags         = optional(bool, true)
    keep_recent            = optional(number, 20)
    repository_id          = optional(string, "aeroflow")
  })
  default = {}
  validation {
    condition     = var.artifact_registry.keep_recent >= 1 && var.artifact_registry.delete_older_than_days >= 1
    error_message = "Keep at least one image and delete nothing younger than a day."
  }
}

variable "bigquery" {
  description = "The dataset the services read and write (output of the bigquery module)."
  type = object({
    dataset_id = string
    location   = string
  })
}

variable "deletion_protection" {
  description = "Refuse to destroy the Cloud Run services from Terraform."
  type        = bool
  default     = true
}

variable "image" {
  description = "Image of the first revision. Later revisions are rolled by CD (gcloud run deploy) and ignored by Terraform."
  type        = string
  validation {
    condition     = length(var.image) > 0 && !endswith(var.image, ":latest")
    error_message = "Give an image by tag or digest, not :latest."
  }
}

variable "ingest" {
  description = "The Pub/Sub push ingest service. Only the push service account may invoke it."
  type = object({
    concurrency         = optional(number, 250)
    cpu                 = optional(string, "1")
    cpu_idle            = optional(bool, true)
    env                 = optional(map(string), {})
    extra_project_roles = optional(list(string), [])
    ingress             = optional(string, "INGRESS_TRAFFIC_INTERNAL_ONLY")
    max_instances       = optional(number, 10)
    memory              = optional(string, "1Gi")
    min_instances       = optional(number, 0)
    push_audience       = optional(string)
    timeout             = optional(string, "60s")
  })
  default = {}
  validation {
    condition     = contains(["INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"], var.ingest.ingress)
    error_message = "ingest.ingress is a Cloud Run ingress setting."
  }
  validation {
    condition     = var.ingest.min_instances >= 0 && var.ingest.max_instances >= max(1, var.ingest.min_instances)
    error_message = "Need 0 <= min_instances <= max_instances and max_instances >= 1."
  }
  validation {
    condition     = var.ingest.concurrency >= 1 && var.ingest.concurrency <= 1000
    error_message = "Concurrency is 1-1000 requests per instance."
  }
  validation {
    condition     = !contains(keys(var.ingest.env), "PORT")
    error_message = "PORT is set by Cloud Run and cannot be overridden."
  }
  validation {
    condition     = length(setintersection(var.ingest.extra_project_roles, ["roles/owner", "roles/editor", "roles/viewer"])) == 0
    error_message = "Primitive roles are not allowed."
  }
}

variable "labels" {
  description = "Labels on every resource that takes them."
  type        = map(string)
  default     = {}
}

variable "name_prefix" {
  description = "Prefix of service, service account and secret names."
  type        = string
  default     = "aeroflow"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,16}$", var.name_prefix))
    error_message = "2-17 lowercase letters, digits or dashes, starting with a letter (service account ids are at most 30 characters)."
  }
}

variable "project_id" {
  description = "Project that runs the services."
  type        = string
}

variable "region" {
  description = "Region of the services and the Artifact Registry repository."
  type        = string
}

variable "worker_service_account" {
  description = "Create a service account for `aeroflow worker` (streaming pull), with the same storage roles as ingest. The worker itself is run outside this module."
  type        = bool
  default     = false
}
