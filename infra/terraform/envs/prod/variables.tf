variable "api_access" {
  description = "public: anyone may reach the API and the app checks API keys; iam: only api_invokers may."
  type        = string
  default     = "public"
}

variable "api_invokers" {
  description = "Members allowed to call the API when api_access = iam."
  type        = list(string)
  default     = []
}

variable "bigquery_location" {
  description = "BigQuery dataset location."
  type        = string
  default     = "EU"
}

variable "bigquery_subscription" {
  description = "Also create the zero-code raw path: a Pub/Sub BigQuery subscription into flight_events_raw."
  type        = bool
  default     = false
}

variable "deployer_can_publish" {
  description = "Let the CD identity publish to the topic: deploy.yml proves every deploy, prod included, by publishing an end-to-end test event. Turning it off makes prod deploys fail their e2e step."
  type        = bool
  default     = true
}

variable "github_environment" {
  description = "GitHub Actions environment whose jobs may deploy to prod (put required reviewers on it); deploy.yml and terraform.yml use prod."
  type        = string
  default     = "prod"
}

variable "github_repository" {
  description = "GitHub repository (owner/name) trusted to deploy."
  type        = string
}

variable "github_repository_id" {
  description = "Numeric GitHub repository id (pins trust against name reuse)."
  type        = string
  default     = null
}

variable "image" {
  description = "Image of the first revision, e.g. europe-west1-docker.pkg.dev/<project>/aeroflow/aeroflow:<sha>. CD rolls later ones."
  type        = string
}

variable "labels" {
  description = "Labels on every resource."
  type        = map(string)
  default     = {}
}

variable "plan_environments" {
  description = "GitHub environments of pull-request plan jobs that may federate (bind their read-only identity yourself)."
  type        = list(string)
  default     = ["prod-plan"]
}

variable "project_id" {
  description = "GCP project of this environment."
  type        = string
}

variable "region" {
  description = "Region of Cloud Run and Artifact Registry."
  type        = string
  default     = "europe-west1"
}

variable "worker" {
  description = "Create the pull subscription and service account for `aeroflow worker` (streaming pull)."
  type        = bool
  default     = false
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids for page- and ticket-severity alerts."
  type = object({
    page   = optional(list(string), [])
    ticket = optional(list(string), [])
  })
  default = {}
}
