variable "artifact_registry" {
  description = "Repository the deployer pushes images to."
  type = object({
    location      = string
    repository_id = string
  })
}

variable "cloud_run_services" {
  description = "Cloud Run services the deployer may roll new revisions of and shift traffic on (key => location, name)."
  type = map(object({
    location = string
    name     = string
  }))
  default = {}
}

variable "deploy_refs" {
  description = "Git refs whose workflows may obtain credentials (branch pin for deploys)."
  type        = list(string)
  default     = ["refs/heads/main"]
  validation {
    condition     = length(var.deploy_refs) > 0 && alltrue([for r in var.deploy_refs : startswith(r, "refs/")])
    error_message = "Give at least one full ref such as refs/heads/main."
  }
}

variable "deployer_account_id" {
  description = "Account id of the deployer service account."
  type        = string
  default     = "aeroflow-deployer"
}

variable "github_environment" {
  description = "If set, only jobs running in this GitHub Actions environment (with its protection rules) may obtain credentials."
  type        = string
  default     = null
}

variable "github_repository" {
  description = "The one repository trusted, as owner/name."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository is owner/name."
  }
}

variable "github_repository_id" {
  description = "Numeric id of the repository; pins the trust to this repository even if its name is later reused."
  type        = string
  default     = null
  validation {
    condition     = var.github_repository_id == null || can(regex("^[0-9]+$", var.github_repository_id))
    error_message = "The repository id is numeric."
  }
}

variable "plan_environments" {
  description = "GitHub environments whose jobs (Terraform plans on pull requests) may also federate. They get no role here: bind a read-only service account to principal://iam.googleapis.com/<pool>/subject/repo:<owner/name>:environment:<env>."
  type        = list(string)
  default     = []
}

variable "pool_id" {
  description = "Workload identity pool id."
  type        = string
  default     = "github"
}

variable "project_id" {
  description = "Project that holds the pool and the deployer."
  type        = string
}

variable "provider_id" {
  description = "Workload identity pool provider id."
  type        = string
  default     = "github-actions"
}

variable "runtime_service_accounts" {
  description = "Service accounts the deployed services run as (full ids); deploying a revision needs actAs on them."
  type        = map(string)
  default     = {}
}
